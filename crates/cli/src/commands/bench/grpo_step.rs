//! Benchmark row for a whole GRPO step: B prompts × G completions of exactly N new tokens (EOS
//! ignored), verifier rewards, one on-policy pass with β = 0, AdamW. Reference shape 8 × 8 × 128
//! (`--grpo-prompts/--grpo-group/--grpo-new-tokens` change it) on the `reference` preset, or on
//! the checkpoint `--model` names. The phases are the trainer's own timers (rollout, reward,
//! update). TRL's GRPOTrainer on the same shape is `bench/compare.sh`'s business, not this row's.

use std::path::Path;

use aha_model::Precision;
use aha_train::config::{ModelSection, RunConfig, TrainConfig};
use aha_train::grpo::GrpoTrainer;
use aha_train::run::load_policy;
use candle_core::Device;

use super::{cpu_seconds, Row, Timing};

/// B prompts × G completions × new tokens of one step.
#[derive(Debug, Clone, Copy)]
pub struct GrpoShape {
    pub prompts: usize,
    pub group: usize,
    pub new_tokens: usize,
    /// Sequences per forward/backward pass; `None`: all of the step's, at most 16.
    pub micro_batch: Option<usize>,
}

/// The run config of the row; `[model]` is filled in by [`grpo_row`].
fn config(shape: GrpoShape, model: &str) -> String {
    let micro = shape
        .micro_batch
        .unwrap_or(16)
        .min(shape.prompts * shape.group);
    format!(
        r#"
name = "bench"
steps = 100000
[model]
{model}
[data]
source = {{ kind = "addition", digits = 4 }}
template = {{ kind = "raw" }}
[rollout]
prompts_per_step = {prompts}
group_size = {group}
max_new_tokens = {new}
ignore_eos = true
[grpo]
beta = 0.0
micro_batch_size = {micro}
[optim]
lr = 1e-5
[output]
progress = false
"#,
        prompts = shape.prompts,
        group = shape.group,
        new = shape.new_tokens,
    )
}

pub fn grpo_row(
    model_dir: Option<&Path>,
    shape: GrpoShape,
    seed: u64,
    (device, dtype): (&Device, Precision),
    timing: Timing,
) -> anyhow::Result<Row> {
    let model_line = match model_dir {
        // A JSON string is a valid TOML basic string.
        Some(dir) => format!("path = {}", serde_json::to_string(&dir.to_string_lossy())?),
        None => "init = \"reference\"".to_string(),
    };
    let cfg = TrainConfig::from_toml_str(&config(shape, &model_line), &[format!("seed={seed}")])?;
    let section = ModelSection {
        init_seed: seed,
        ..cfg.model.clone()
    };
    let policy = load_policy(&section, device)?;
    let label = super::generation::model_label(policy.model.config());
    let model = policy.model.with_precision(dtype);
    let (dataset, _) = cfg.data.open()?;
    let mut trainer = GrpoTrainer::new(cfg, model, policy.tokenizer, dataset)?;
    let mut tokens = 0usize;
    let phases = timing.measure(|| {
        let cpu_start = cpu_seconds();
        let m = trainer.step()?.metrics;
        tokens = m.generated_tokens;
        let cpu = match (cpu_start, cpu_seconds()) {
            (Some(a), Some(b)) => b - a,
            _ => f64::NAN,
        };
        Ok(vec![m.step_s, m.rollout_s, m.reward_s, m.update_s, cpu])
    })?;
    let (step, rollout, reward, update, cpu) =
        (phases[0], phases[1], phases[2], phases[3], phases[4]);
    Ok(Row {
        name: "grpo-step".into(),
        shape: format!(
            "{label} B{} G{} +{}",
            shape.prompts, shape.group, shape.new_tokens
        ),
        seconds: step,
        tokens_per_s: Some(tokens as f64 / step),
        gflop_per_s: None,
        fields: vec![
            ("rollout_ms", rollout * 1e3),
            ("reward_ms", reward * 1e3),
            ("update_ms", update * 1e3),
            ("cpu_s", cpu),
        ],
        detail: format!(
            "rollout {:.0} ms, reward {:.1} ms, update {:.0} ms; cpu {cpu:.2} s/step",
            rollout * 1e3,
            reward * 1e3,
            update * 1e3,
        ),
    })
}
