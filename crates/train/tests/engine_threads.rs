//! The thread count cannot change a rollout. Alone in its test binary because it sets
//! `RAYON_NUM_THREADS`, which candle's matmul reads on every call.

mod engine_support;

use aha_train::engine::{generate_groups, SamplingParams};
use engine_support::{prompts, random_model, tiny_config};

#[test]
fn same_output_for_one_and_three_threads() {
    let cfg = tiny_config();
    let model = random_model(&cfg, 21);
    let ps = prompts(&[7, 2, 13], cfg.vocab_size, 22);
    let p = SamplingParams {
        temperature: 0.9,
        top_p: 0.95,
        max_new_tokens: 16,
        seed: 4,
        ..SamplingParams::default()
    };
    let run = |threads: usize| {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| generate_groups(&model, &ps, 5, &p, None).unwrap())
    };
    let one = run(1);
    let three = run(3);
    assert_eq!(one.len(), 3);
    for (a, b) in one.iter().zip(&three) {
        for (ca, cb) in a.completions.iter().zip(&b.completions) {
            assert_eq!(ca.ids, cb.ids);
            for (x, y) in ca.logprobs.iter().zip(&cb.logprobs) {
                assert!((x - y).abs() < 1e-5);
            }
        }
    }
}
