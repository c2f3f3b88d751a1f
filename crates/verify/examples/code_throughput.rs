//! Executions per second of the code sandbox on a trivial program, with 1 and 2 parallel
//! slots (and more if given: `cargo run --release -p aha-verify --example code_throughput 1 2 4`).
//! Needs root, bwrap and setpriv, like the code reward itself.

use aha_verify::code::{CodeConfig, CodeRunner, Problem, TestCase};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut slots: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    if slots.is_empty() {
        slots = vec![1, 2];
    }
    let completion = "```python\nprint(int(input()) + 1)\n```";
    let tests: Vec<TestCase> = (0..8)
        .map(|i| TestCase {
            input: format!("{i}\n"),
            output: format!("{}", i + 1),
        })
        .collect();
    let problems = vec![
        Problem {
            completion,
            tests: &tests
        };
        8
    ];
    for parallel in slots {
        let runner = CodeRunner::new(CodeConfig {
            parallel: Some(parallel),
            ..CodeConfig::default()
        })?;
        let (verdicts, stats) = runner.judge(&problems)?;
        let correct = verdicts.iter().filter(|v| v.correct).count();
        println!(
            "parallel {parallel}: {} executions in {:.2} s = {:.1} executions/s ({correct}/{} correct)",
            stats.executions,
            stats.elapsed.as_secs_f64(),
            stats.per_second(),
            verdicts.len()
        );
    }
    Ok(())
}
