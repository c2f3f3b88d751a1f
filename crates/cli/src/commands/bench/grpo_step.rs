//! Benchmark row for a whole GRPO step on the reference shape: 8 prompts × G = 8 completions of
//! exactly 128 tokens (EOS ignored), verifier rewards, one on-policy pass with β = 0, AdamW.
//! The phases are the trainer's own timers (rollout, reward, update). TRL's GRPOTrainer took
//! 2.93 s/step on the same shape and machine; the target is ≤ 1.5 s.

use aha_model::Precision;
use aha_train::config::TrainConfig;
use aha_train::grpo::GrpoTrainer;
use aha_train::init_model::init_policy;
use candle_core::Device;

use super::{Row, Timing};

pub const TRL_SECONDS_PER_STEP: f64 = 2.93;

const CONFIG: &str = r#"
name = "bench"
steps = 100000
[model]
init = "reference"
[data]
source = { kind = "addition", digits = 4 }
template = { kind = "raw" }
[rollout]
prompts_per_step = 8
group_size = 8
max_new_tokens = 128
ignore_eos = true
[grpo]
beta = 0.0
micro_batch_size = 16
[optim]
lr = 1e-5
[output]
progress = false
"#;

pub fn grpo_row(
    seed: u64,
    (device, dtype): (&Device, Precision),
    timing: Timing,
) -> anyhow::Result<Row> {
    let cfg = TrainConfig::from_toml_str(CONFIG, &[format!("seed={seed}")])?;
    let (policy, tokenizer) = init_policy("reference", seed, device)?;
    let policy = policy.with_precision(dtype);
    let (dataset, _) = cfg.data.open()?;
    let mut trainer = GrpoTrainer::new(cfg, policy, tokenizer, dataset)?;
    let mut tokens = 0usize;
    let phases = timing.measure(|| {
        let m = trainer.step()?.metrics;
        tokens = m.generated_tokens;
        Ok(vec![m.step_s, m.rollout_s, m.reward_s, m.update_s])
    })?;
    let (step, rollout, reward, update) = (phases[0], phases[1], phases[2], phases[3]);
    Ok(Row {
        name: "grpo_step".into(),
        shape: "d256 L4 h8/2 V1024 B8 G8 128 new".into(),
        seconds: step,
        tokens_per_s: Some(tokens as f64 / step),
        gflop_per_s: None,
        detail: format!(
            "rollout {:.0} ms, reward {:.1} ms, update {:.0} ms; {:.2}x TRL's {TRL_SECONDS_PER_STEP} s",
            rollout * 1e3,
            reward * 1e3,
            update * 1e3,
            TRL_SECONDS_PER_STEP / step
        ),
    })
}
