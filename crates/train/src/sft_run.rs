//! `aha sft`: supervised fine-tuning from a TOML config and a JSONL (or Parquet) file.
//!
//! Each line (row) is `{"prompt": …, "completion": …}` (plain text: the prompt is tokenized as
//! is and the completion follows it, then EOS) or `{"messages": [{"role", "content"}, …]}`
//! (rendered with the checkpoint's chat template; each assistant turn becomes one example whose
//! prompt is everything before it, so the loss covers assistant tokens only); a `reward` field
//! (`aha rejection-sample` writes one) is ignored. Examples are visited in a seeded shuffle per
//! epoch. Writes `metrics.jsonl` (one line per step) and HF checkpoints with
//! `optimizer.safetensors`; resuming an SFT run is not supported.

use std::path::{Path, PathBuf};

use aha_model::config::StoredDtype;
use aha_model::tokenizer::{ChatMessage, Tokenizer};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::ModelSection;
use crate::metrics::JsonlWriter;
use crate::sft::{Example, SftConfig, SftStepStats, SftTrainer};
use crate::{Error, Result};

fn name() -> String {
    "sft".into()
}
fn steps() -> usize {
    100
}
fn batch() -> usize {
    16
}
fn every() -> usize {
    100
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftRunConfig {
    #[serde(default = "name")]
    pub name: String,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "steps")]
    pub steps: usize,
    /// Examples per step.
    #[serde(default = "batch")]
    pub batch_size: usize,
    /// The JSONL or Parquet (`.parquet`) file of examples.
    pub data: PathBuf,
    pub model: ModelSection,
    #[serde(default)]
    pub sft: SftConfig,
    #[serde(default = "every")]
    pub checkpoint_every: usize,
}

impl SftRunConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: Self = toml::from_str(&text).map_err(|e| Error::ConfigFile {
            path: path.into(),
            message: e.to_string(),
        })?;
        if cfg.steps == 0 || cfg.batch_size == 0 || cfg.checkpoint_every == 0 {
            return Err(Error::config(
                "steps",
                "steps, batch_size and checkpoint_every must be at least 1",
            ));
        }
        Ok(cfg)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    completion: Option<String>,
    #[serde(default)]
    messages: Option<Vec<ChatMessage>>,
    /// The verifier's reward, written by `aha rejection-sample`; not used for training.
    #[serde(default, rename = "reward")]
    _reward: Option<serde::de::IgnoredAny>,
}

/// Reads and tokenizes the examples of a JSONL or Parquet file (by extension; Parquet columns
/// `prompt` and `completion`, or `messages` as `list<struct<role, content>>`); errors name the
/// file and line (row).
pub fn read_examples(path: &Path, tokenizer: &Tokenizer) -> Result<Vec<Example>> {
    let bad = |line: usize, message: String| Error::Data {
        path: path.into(),
        line,
        message,
    };
    let mut out = Vec::new();
    if crate::data::parquet::is_parquet(path) {
        let table = crate::data::parquet::read_rows(path, &["prompt", "completion", "messages"])?;
        let pairs = table.has("prompt") && table.has("completion");
        if !(pairs || table.has("messages")) {
            return Err(table.missing(
                path,
                "no columns `prompt` and `completion`, nor a `messages` column",
            ));
        }
        for (n, row) in table.rows.into_iter().enumerate() {
            let row: Line = serde_json::from_value(serde_json::Value::Object(row))
                .map_err(|e| bad(n + 1, e.to_string()))?;
            push_examples(row, tokenizer, &mut out).map_err(|m| bad(n + 1, m))?;
        }
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let row: Line = serde_json::from_str(line).map_err(|e| bad(n + 1, e.to_string()))?;
            push_examples(row, tokenizer, &mut out).map_err(|m| bad(n + 1, m))?;
        }
    }
    if out.is_empty() {
        return Err(bad(0, "no examples".into()));
    }
    Ok(out)
}

/// The examples of one row: one pair, or one per assistant turn of a conversation.
fn push_examples(
    row: Line,
    tokenizer: &Tokenizer,
    out: &mut Vec<Example>,
) -> std::result::Result<(), String> {
    let text = |e: aha_model::Error| e.to_string();
    match (row.prompt, row.completion, row.messages) {
        (Some(p), Some(c), None) => {
            let prompt_ids = tokenizer.encode(&p, true).map_err(text)?;
            let mut completion_ids = tokenizer.encode(&c, false).map_err(text)?;
            completion_ids.extend(tokenizer.eos_token_ids().first());
            if prompt_ids.is_empty() {
                return Err("the prompt encodes to no tokens".into());
            }
            out.push(Example {
                prompt_ids,
                completion_ids,
            });
        }
        (None, None, Some(msgs)) => {
            let before = out.len();
            for (i, m) in msgs.iter().enumerate() {
                if m.role != "assistant" {
                    continue;
                }
                let prefix = tokenizer
                    .apply_chat_template(&msgs[..i], true)
                    .map_err(text)?;
                let full = tokenizer
                    .apply_chat_template(&msgs[..=i], false)
                    .map_err(text)?;
                let p = tokenizer.encode(&prefix, false).map_err(text)?;
                let f = tokenizer.encode(&full, false).map_err(text)?;
                if p.is_empty() || !f.starts_with(&p) {
                    return Err(format!(
                        "assistant turn {i}: the chat template's rendering before the turn \
                         does not tokenize to a prefix of the rendering with it"
                    ));
                }
                out.push(Example {
                    completion_ids: f[p.len()..].to_vec(),
                    prompt_ids: p,
                });
            }
            if out.len() == before {
                return Err("`messages` has no assistant turn".into());
            }
        }
        _ => return Err("expected {\"prompt\", \"completion\"} or {\"messages\"}".into()),
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
struct SftLine {
    step: usize,
    #[serde(flatten)]
    stats: SftStepStats,
}

/// Runs SFT; returns the last step's stats.
pub fn run_sft(cfg: &SftRunConfig, run_dir: &Path) -> Result<Option<SftStepStats>> {
    std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
    let device = candle_core::Device::Cpu;
    let train_cfg_model = &cfg.model;
    let (model, tokenizer) = match (&train_cfg_model.path, &train_cfg_model.init) {
        (Some(p), None) => (
            aha_model::load::load_model(p, &device, true)?,
            Tokenizer::from_dir(p)?,
        ),
        (None, Some(preset)) => {
            crate::init_model::init_policy(preset, train_cfg_model.init_seed, &device)?
        }
        _ => {
            return Err(Error::config(
                "model",
                "set exactly one of `path` and `init`",
            ))
        }
    };
    let examples = read_examples(&cfg.data, &tokenizer)?;
    let mut metrics = JsonlWriter::open(&run_dir.join("metrics.jsonl"), None)?;
    let mut trainer = SftTrainer::new(model, cfg.sft.clone(), cfg.steps)?;
    let mut order: Vec<usize> = Vec::new();
    let (mut epoch, mut cursor) = (0u64, 0usize);
    let mut last = None;
    for step in 1..=cfg.steps {
        let mut batch = Vec::with_capacity(cfg.batch_size);
        while batch.len() < cfg.batch_size {
            if cursor == order.len() {
                order = (0..examples.len()).collect();
                order.shuffle(&mut ChaCha8Rng::seed_from_u64(crate::data::mix(
                    cfg.seed, epoch,
                )));
                (epoch, cursor) = (epoch + 1, 0);
            }
            batch.push(examples[order[cursor]].clone());
            cursor += 1;
        }
        let stats = trainer.step(&batch)?;
        metrics.write(&SftLine { step, stats })?;
        if step % cfg.checkpoint_every == 0 || step == cfg.steps {
            let dir = run_dir
                .join("checkpoints")
                .join(crate::grpo::checkpoint::checkpoint_name(step));
            aha_model::save::write_atomically(&dir, |tmp| {
                aha_model::save::save_checkpoint(
                    trainer.model(),
                    &tokenizer,
                    None,
                    tmp,
                    StoredDtype::F32,
                )?;
                trainer
                    .save_optimizer(&tmp.join(crate::grpo::checkpoint::OPTIMIZER_FILE))
                    .map_err(|e| aha_model::Error::Input(e.to_string()))
            })?;
        }
        last = Some(stats);
    }
    Ok(last)
}
