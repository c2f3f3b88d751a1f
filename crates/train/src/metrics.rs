//! Per-step metrics of a GRPO run and the JSONL files they go to.
//!
//! [`StepMetrics`] is one line of `metrics.jsonl`; [`Sample`] one line of `samples.jsonl`.
//! Fields listed in [`TIMING_FIELDS`] depend on wall time; every other field is a deterministic
//! function of the config and seed, which is what the resume test compares. Cost is counted in
//! FLOPs from `ModelConfig::flops_per_token` (forward = 1×, backward = 2×), device-hours of wall
//! time, and dollars at the configured price per device-hour.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use aha_model::ModelConfig;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Fields of [`StepMetrics`] that measure time and so differ between identical runs.
pub const TIMING_FIELDS: &[&str] = &[
    "tokens_per_s",
    "rollout_s",
    "reward_s",
    "update_s",
    "allreduce_s",
    "step_s",
    "device_hours",
    "cost_usd",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// 1-based: the number of steps done when this line was written.
    pub step: usize,
    pub reward_mean: f64,
    pub reward_std: f64,
    /// Share of judged completions that are correct.
    pub accuracy: f64,
    /// Share of completions in the R1 format.
    pub format_rate: f64,
    pub completion_len_mean: f64,
    pub completion_len_max: usize,
    /// Share of completions cut by `max_new_tokens`.
    pub truncated_share: f64,
    /// Completions no reward term could judge.
    pub unjudged: usize,
    pub groups_generated: usize,
    /// Groups that went into the update (dynamic sampling drops uniform ones).
    pub groups_trained: usize,
    pub loss: f64,
    /// Mean per-token KL estimate to the reference (null when β = 0).
    pub kl: Option<f64>,
    pub clip_fraction: f64,
    pub entropy: f64,
    pub grad_norm: f64,
    pub lr: f64,
    /// Updates skipped for non-finite values, this step.
    pub skipped_updates: usize,
    /// Generated tokens this step.
    pub generated_tokens: usize,
    /// Generated + trained tokens per second of step time.
    pub tokens_per_s: f64,
    pub rollout_s: f64,
    pub reward_s: f64,
    pub update_s: f64,
    /// Seconds of `update_s` spent summing gradients and losses over data-parallel ranks
    /// (0 on one process).
    #[serde(default)]
    pub allreduce_s: f64,
    pub step_s: f64,
    /// Cumulative FLOPs of the run (rollouts, reference and update).
    pub flops: f64,
    /// Cumulative device-hours of step time.
    pub device_hours: f64,
    /// Cumulative dollars at `output.price_per_device_hour`.
    pub cost_usd: f64,
}

/// One completion, for reading what the policy writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub step: usize,
    pub prompt: String,
    pub completion: String,
    pub answer: Option<String>,
    pub reward: Option<f32>,
    pub correct: Option<bool>,
    pub tokens: usize,
    pub truncated: bool,
}

/// Forward FLOPs of `tokens` tokens that follow `context` tokens already in the sequence.
pub fn forward_flops(cfg: &ModelConfig, context: usize, tokens: usize) -> f64 {
    // Attention cost grows with position; the mean context of the span is its midpoint.
    tokens as f64 * cfg.flops_per_token(context + tokens / 2)
}

/// Appends JSON lines to a file, flushing after each (a crash loses at most the line in flight).
pub struct JsonlWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl JsonlWriter {
    /// Opens `path` for appending, first dropping lines whose `step` is above `keep_through`
    /// (written after the checkpoint a resumed run starts from). `None` starts the file afresh.
    pub fn open(path: &Path, keep_through: Option<usize>) -> Result<Self> {
        let kept = match keep_through {
            Some(last) if path.exists() => lines_through(path, last)?,
            _ => Vec::new(),
        };
        let mut out = BufWriter::new(File::create(path).map_err(|e| Error::io(path, e))?);
        for line in kept {
            writeln!(out, "{line}").map_err(|e| Error::io(path, e))?;
        }
        out.flush().map_err(|e| Error::io(path, e))?;
        Ok(Self {
            path: path.into(),
            out,
        })
    }

    pub fn write<T: Serialize>(&mut self, value: &T) -> Result<()> {
        let line = serde_json::to_string(value).map_err(|e| Error::Checkpoint {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        writeln!(self.out, "{line}").map_err(|e| Error::io(&self.path, e))?;
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// Lines of a JSONL file whose `step` is at most `last`.
fn lines_through(path: &Path, last: usize) -> Result<Vec<String>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut kept = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| Error::Data {
            path: path.into(),
            line: n + 1,
            message: e.to_string(),
        })?;
        if v.get("step")
            .and_then(|s| s.as_u64())
            .is_some_and(|s| s as usize <= last)
        {
            kept.push(line);
        }
    }
    Ok(kept)
}

/// Reads `metrics.jsonl` back.
pub fn read_metrics(path: &Path) -> Result<Vec<StepMetrics>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).map_err(|e| Error::Data {
                path: path.into(),
                line: n + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

/// Mean and population std.
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}
