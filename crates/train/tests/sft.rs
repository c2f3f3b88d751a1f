//! The SFT trainer learns: loss falls on a fixed batch, gradient accumulation over micro-batches
//! equals one big batch, and pretraining mode counts every token.

mod common;

use aha_train::optim::OptimConfig;
use aha_train::sft::{Example, LossOn, SftConfig, SftTrainer};

fn batch() -> Vec<Example> {
    (0..6)
        .map(|i| Example {
            prompt_ids: vec![2, 3 + i as u32 % 3],
            completion_ids: vec![10 + i as u32 % 3, 11, 12, 1],
        })
        .collect()
}

fn config(micro: usize, loss_on: LossOn) -> SftConfig {
    SftConfig {
        optim: OptimConfig {
            lr: 3e-3,
            ..OptimConfig::default()
        },
        micro_batch_size: micro,
        loss_on,
    }
}

#[test]
fn loss_falls_on_a_fixed_batch() {
    let cfg = common::tiny_config(32);
    let mut t = SftTrainer::new(
        common::tiny_model(&cfg, 1),
        config(4, LossOn::Completion),
        30,
    )
    .unwrap();
    let b = batch();
    let first = t.step(&b).unwrap();
    assert_eq!(first.tokens, 24);
    assert!((first.loss - (32f64).ln()).abs() < 0.5, "{}", first.loss);
    let mut last = first;
    for _ in 0..30 {
        last = t.step(&b).unwrap();
    }
    assert!(!last.skipped && last.grad_norm.is_finite());
    assert!(
        last.loss < 0.5 * first.loss,
        "{} → {}",
        first.loss,
        last.loss
    );
    assert_eq!(t.counters().updates, 31);
}

#[test]
fn micro_batches_match_one_batch() {
    let cfg = common::tiny_config(32);
    let b = batch();
    let mut whole =
        SftTrainer::new(common::tiny_model(&cfg, 2), config(6, LossOn::All), 5).unwrap();
    let mut parts =
        SftTrainer::new(common::tiny_model(&cfg, 2), config(4, LossOn::All), 5).unwrap();
    let a = whole.step(&b).unwrap();
    let c = parts.step(&b).unwrap();
    // Pretraining counts all 5 targets of each 6-token sequence.
    assert_eq!(a.tokens, 30);
    assert!((a.loss - c.loss).abs() < 1e-5, "{} vs {}", a.loss, c.loss);
    assert!((a.grad_norm - c.grad_norm).abs() < 1e-4 * a.grad_norm);
    let a2 = whole.step(&b).unwrap();
    let c2 = parts.step(&b).unwrap();
    assert!(
        (a2.loss - c2.loss).abs() < 1e-4,
        "{} vs {}",
        a2.loss,
        c2.loss
    );
}

#[test]
fn jsonl_examples_from_pairs_and_chat_messages() {
    use aha_train::init_model::init_policy;
    use aha_train::sft_run::read_examples;
    let (_, tok) = init_policy("tiny", 0, &candle_core::Device::Cpu).unwrap();
    let p = std::env::temp_dir().join(format!("aha_sft_{}.jsonl", std::process::id()));
    std::fs::write(
        &p,
        concat!(
            "{\"prompt\": \"2+2=\", \"completion\": \"4\"}\n",
            "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, ",
            "{\"role\": \"assistant\", \"content\": \"hello\"}, ",
            "{\"role\": \"user\", \"content\": \"again\"}, ",
            "{\"role\": \"assistant\", \"content\": \"bye\"}]}\n"
        ),
    )
    .unwrap();
    let ex = read_examples(&p, &tok, tok.vocab_size()).unwrap();
    assert_eq!(ex.len(), 3, "one pair and two assistant turns");
    // The pair's completion ends with EOS.
    assert_eq!(ex[0].completion_ids.last(), tok.eos_token_ids().first());
    // Loss covers exactly the assistant turn (and its end-of-turn token).
    let turn = tok.decode(&ex[2].completion_ids, false).unwrap();
    assert!(turn.starts_with("bye<|im_end|>"), "{turn:?}");
    let prompt = tok.decode(&ex[2].prompt_ids, false).unwrap();
    assert!(
        prompt.contains("hello") && prompt.ends_with("assistant\n"),
        "{prompt:?}"
    );

    std::fs::write(&p, "{\"prompt\": \"x\"}\n").unwrap();
    let err = read_examples(&p, &tok, tok.vocab_size())
        .unwrap_err()
        .to_string();
    assert!(err.contains(":1:"), "{err}");
    std::fs::remove_file(&p).unwrap();
}
