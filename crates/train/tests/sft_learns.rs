//! The SFT trainer learns a lookup table it has never seen whole: one-digit addition mod 10
//! from prompts `a b`, scored by greedy accuracy over all 100 pairs. Catches wrong gradients
//! that still let the loss fall a little (an op whose backward is off, a frozen MLP).

mod common;

use aha_train::optim::OptimConfig;
use aha_train::sft::{Example, LossOn, SftConfig, SftTrainer};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};

fn example(a: u32, b: u32) -> Example {
    Example {
        prompt_ids: vec![2, 10 + a, 20 + b, 3],
        completion_ids: vec![30 + (a + b) % 10, 1],
    }
}

#[test]
fn sft_learns_one_digit_addition() {
    let mut cfg = common::tiny_config(48);
    cfg.hidden_size = 64;
    cfg.head_dim = 16;
    cfg.intermediate_size = 256;
    let sft = SftConfig {
        optim: OptimConfig {
            lr: 3e-3,
            ..OptimConfig::default()
        },
        micro_batch_size: 32,
        loss_on: LossOn::Completion,
    };
    let steps = 300;
    let mut t = SftTrainer::new(common::tiny_model(&cfg, 3), sft, steps).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    for _ in 0..steps {
        let batch: Vec<Example> = (0..32)
            .map(|_| example(rng.gen_range(0..10), rng.gen_range(0..10)))
            .collect();
        t.step(&batch).unwrap();
    }
    let model = t.model().detached();
    let mut right = 0;
    for a in 0..10 {
        for b in 0..10 {
            let e = example(a, b);
            let ids = Tensor::new(e.prompt_ids.as_slice(), &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let hidden = model.forward(&ids, None, None).unwrap();
            let logits = model.logits(&hidden).unwrap();
            let last = logits.get(0).unwrap().get(3).unwrap();
            let pick = last.argmax(0).unwrap().to_scalar::<u32>().unwrap();
            right += usize::from(pick == e.completion_ids[0]);
        }
    }
    assert!(
        right >= 95,
        "greedy accuracy {right}/100 after {steps} steps"
    );
}
