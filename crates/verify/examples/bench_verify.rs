//! Verifications per second on realistic completions, and the worst per-call time on
//! adversarial 10 kB inputs. Single-threaded: the numbers are per core. Rates are per second of
//! this thread's CPU time, so a machine shared with other jobs still measures the code, not the
//! load (the wall-clock rate is printed beside it).
//!
//! `cargo run --release -p aha-verify --example bench_verify`

use std::hint::black_box;
use std::time::{Duration, Instant};

use aha_verify::{
    arithmetic_reward, countdown_reward, format_reward, math_correct, ExtractConfig, ThinkRule,
};

/// (gold, predicted answer) pairs of typical length, right and wrong.
const MATH: &[(&str, &str)] = &[
    ("\\frac{1}{2}", "0.5"),
    ("42", "42"),
    ("1000", "1,000"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("\\frac{3\\pi}{4}", "\\frac{3}{4}\\pi"),
    ("(1, -2)", "\\left(1,-2\\right)"),
    ("x^2+2x+1", "(x+1)^2"),
    ("\\frac{7}{2}", "3.4"),
    ("[0, 1)", "[0,1)"),
    ("50\\%", "0.5"),
];

const REASONING: &str = "Let me set up the problem. We have two quantities whose sum is given, \
    and we are told their ratio. Writing the first as a and the second as b, a + b = 30 and \
    a/b = 2, so a = 2b and 3b = 30, hence b = 10 and a = 20. Checking: 20 + 10 = 30 and 20/10 = \
    2, as required. The question asks for the product minus the difference, which is \
    200 - 10 = 190. Now we simplify the expression carefully and double-check the arithmetic. ";

fn rate(name: &str, inputs: &[(String, String)], f: impl Fn(&str, &str) -> bool) {
    let mut n = 0u64;
    let start = Instant::now();
    let cpu_start = thread_cpu_secs();
    while start.elapsed() < Duration::from_millis(700) {
        for (c, g) in inputs {
            black_box(f(black_box(c), black_box(g)));
        }
        n += inputs.len() as u64;
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = thread_cpu_secs() - cpu_start;
    let bytes = inputs.iter().map(|(c, _)| c.len()).sum::<usize>() / inputs.len();
    println!(
        "{name:<34} {bytes:>7} B {:>12.0}/s {:>9.2} µs {:>12.0}/s",
        n as f64 / cpu,
        1e6 * cpu / n as f64,
        n as f64 / wall
    );
}

/// CPU seconds this thread has run.
fn thread_cpu_secs() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for clock_gettime to write.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn worst(name: &str, input: &str) -> Duration {
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        black_box(math_correct(black_box(input), "\\frac{1}{2}"));
        black_box(format_reward(black_box(input), ThinkRule::Required));
        black_box(countdown_reward(
            input,
            &[1, 2, 3],
            6,
            true,
            &ExtractConfig::default(),
        ));
        worst = worst.max(t.elapsed());
    }
    println!(
        "{name:<34} {:>7} B {:>25.1} µs",
        input.len(),
        worst.as_secs_f64() * 1e6
    );
    worst
}

fn main() {
    println!(
        "{:<34} {:>9} {:>14} {:>12} {:>14}",
        "verifier", "input", "calls/CPU-s", "CPU/call", "calls/wall-s"
    );
    let math: Vec<(String, String)> = MATH
        .iter()
        .map(|(g, p)| {
            let c = format!("<think>{REASONING}</think>\n<answer>\\boxed{{{p}}}</answer>");
            (c, g.to_string())
        })
        .collect();
    rate("math (think + boxed answer)", &math, |c, g| {
        math_correct(c, g) == Some(true)
    });
    let bare: Vec<(String, String)> = MATH
        .iter()
        .map(|(g, p)| (format!("<answer>{p}</answer>"), g.to_string()))
        .collect();
    rate("math (answer only)", &bare, |c, g| {
        math_correct(c, g) == Some(true)
    });
    rate("format", &math, |c, _| {
        format_reward(c, ThinkRule::Required) > 0.0
    });
    let arith: Vec<(String, String)> = (0..10)
        .map(|i| {
            let (a, b) = (4821 + 37 * i, 5377 + 91 * i);
            let c = format!(
                "<think>7+1=8, 2+7=9, 8+3=11 carry</think><answer>{}</answer>",
                a + b
            );
            (c, (a + b).to_string())
        })
        .collect();
    rate("arithmetic", &arith, |c, g| {
        arithmetic_reward(c, g, ThinkRule::Optional) == Some(1.0)
    });
    let cd = vec![(
        "<think>try 50-25 then times 3</think><answer>(50 - 25) * 3 + 7 - 7</answer>".to_string(),
        String::new(),
    )];
    rate("countdown", &cd, |c, _| {
        countdown_reward(c, &[3, 7, 7, 25, 50], 75, true, &ExtractConfig::default()) > 0.0
    });

    println!("\nworst of 20 runs, math + format + countdown on one input:");
    let k10 = 10 * 1024;
    let cases = [
        (
            "realistic 10 kB",
            format!(
                "<think>{}</think><answer>\\boxed{{1/2}}</answer>",
                REASONING.repeat(k10 / REASONING.len())
            ),
        ),
        (
            "10 kB of nested braces",
            format!("\\boxed{{{}}}", "{".repeat(k10)),
        ),
        ("10 kB of boxes", "\\boxed{1}".repeat(k10 / 9)),
        ("10 kB of unclosed boxes", "\\boxed{".repeat(k10 / 7)),
        (
            "1000-byte tower 2^2^…",
            format!("<answer>{}2</answer>", "2^".repeat(499)),
        ),
        (
            "1000-byte sum",
            format!("<answer>{}1</answer>", "1+".repeat(499)),
        ),
        (
            "1000-byte set",
            format!("<answer>{}1</answer>", "1,".repeat(499)),
        ),
        ("10^{10^{10}}", "<answer>10^{10^{10}}</answer>".to_string()),
        (
            "10 kB of answer phrases",
            "the final answer is ".repeat(k10 / 20),
        ),
        (
            "1 MB of nested braces",
            format!("\\boxed{{{}}}", "{".repeat(1 << 20)),
        ),
    ];
    let max = cases
        .iter()
        .map(|(n, c)| worst(n, c))
        .max()
        .unwrap_or_default();
    println!(
        "\nworst per-call time over all cases: {:.1} µs",
        max.as_secs_f64() * 1e6
    );
}
