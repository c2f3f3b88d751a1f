//! Evaluation on a one-worker rayon pool (`RAYON_NUM_THREADS=1`, a one-core machine), run from
//! that worker as the `aha` binary runs its commands: batch b is scored on a thread of its own,
//! whose parallel loops need a rayon worker, while the worker generates batch b + 1 and then
//! waits for the scores. A plain join there left the only worker blocked and the scorer's jobs
//! queued forever (`aha demo` hung at its first evaluation). This test gets the global pool to
//! itself (its own process), so it holds exactly one worker.

use std::sync::mpsc;
use std::time::Duration;

use aha_train::data::{Item, PromptTemplate};
use aha_train::eval::{evaluate, EvalConfig};
use aha_train::init_model::init_policy;
use aha_train::worker::on_rayon_worker;
use aha_verify::Task;
use candle_core::Device;

#[test]
fn evaluation_finishes_on_a_single_worker() {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .unwrap();
    let (done, wait) = mpsc::channel();
    std::thread::spawn(move || {
        let (model, tok) = init_policy("demo_tiny", 0, &Device::Cpu).unwrap();
        let items: Vec<Item> = (0..9)
            .map(|a| Item::new(format!("{a}+1"), Some((a + 1).to_string()), None, None))
            .collect();
        let cfg = EvalConfig {
            k: 2,
            temperature: 1.0,
            max_new_tokens: 8,
            template: PromptTemplate::Format {
                format: "Q:{prompt}=".into(),
            },
            prompts_per_batch: 2,
            task: Task::Arithmetic,
            ..EvalConfig::default()
        };
        let summary = on_rayon_worker(|| evaluate(&model, &tok, &items, &cfg).unwrap().0);
        done.send(summary.problems).unwrap();
    });
    let problems = wait
        .recv_timeout(Duration::from_secs(120))
        .expect("evaluation on one rayon worker did not finish in 120 s (deadlocked)");
    assert_eq!(problems, 9);
}
