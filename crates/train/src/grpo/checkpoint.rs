//! Saving and restoring a [`GrpoTrainer`]: a checkpoint directory is a Hugging Face checkpoint
//! (loadable by transformers and vLLM) plus `optimizer.safetensors`, `trainer_state.json` and,
//! when β > 0, `reference.safetensors`.
//!
//! Writing is atomic: the whole directory is built under a temporary name and renamed into
//! place, so a directory named `step_NNNNNN` is always complete. Weights are stored in f32 so a
//! resumed run continues bit for bit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aha_model::config::StoredDtype;
use aha_model::save::{save_checkpoint, write_atomically};
use candle_core::Tensor;

use super::{GrpoTrainer, TrainerState};
use crate::data::PromptStream;
use crate::{Error, Result};

pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "trainer_state.json";
pub const REFERENCE_FILE: &str = "reference.safetensors";

/// `checkpoints/step_000100` for 100 steps done.
pub fn checkpoint_name(step: usize) -> String {
    format!("step_{step:06}")
}

/// The newest complete checkpoint under `dir` (a `step_NNNNNN` directory with its state file).
pub fn newest_checkpoint(dir: &Path) -> Result<Option<(usize, PathBuf)>> {
    if !dir.exists() {
        return Ok(None);
    }
    let mut best: Option<(usize, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let step = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("step_"))
            .and_then(|s| s.parse::<usize>().ok());
        if let Some(step) = step {
            if path.join(STATE_FILE).is_file() && best.as_ref().is_none_or(|b| step > b.0) {
                best = Some((step, path));
            }
        }
    }
    Ok(best)
}

impl GrpoTrainer {
    /// Writes the trainer's complete state to `dir` (replacing it if present).
    pub fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        write_atomically(dir, |tmp| {
            save_checkpoint(
                &self.policy,
                &self.tokenizer,
                self.generation.as_ref(),
                tmp,
                StoredDtype::F32,
            )?;
            self.updater.optimizer.save(&tmp.join(OPTIMIZER_FILE))?;
            if let Some(r) = &self.reference {
                let path = tmp.join(REFERENCE_FILE);
                let tensors: std::collections::HashMap<String, Tensor> =
                    r.tensors().into_iter().collect();
                candle_core::safetensors::save(&tensors, &path)?;
            }
            let path = tmp.join(STATE_FILE);
            let text = serde_json::to_string_pretty(&self.state).map_err(|source| {
                aha_model::Error::Json {
                    path: path.clone(),
                    source,
                }
            })?;
            std::fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))
        })
    }

    /// Restores weights, optimizer, reference, stream position and counters from `dir`.
    pub fn restore_checkpoint(&mut self, dir: &Path) -> Result<()> {
        let state_path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
        let state: TrainerState = serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
            path: state_path.clone(),
            message: e.to_string(),
        })?;
        let device = self.policy.device().clone();
        let ckpt = aha_model::load::load_checkpoint(dir, &device)?;
        set_weights(&self.policy, &ckpt.tensors, dir)?;
        self.updater
            .optimizer
            .load(&dir.join(OPTIMIZER_FILE), &device)?;
        self.updater.counters = state.counters;
        if self.reference.is_some() {
            let path = dir.join(REFERENCE_FILE);
            let tensors: BTreeMap<String, Tensor> = candle_core::safetensors::load(&path, &device)
                .map_err(|e| Error::Checkpoint {
                    path: path.clone(),
                    message: e.to_string(),
                })?
                .into_iter()
                .collect();
            let r = aha_model::Model::from_tensors(self.policy.config(), &tensors, false)?;
            self.reference = Some(r);
        }
        let dataset = self.stream.dataset().clone();
        self.stream = PromptStream::new(dataset, self.cfg.seed, state.data_position);
        self.state = state;
        Ok(())
    }
}

/// Copies `tensors` into the model's parameters in place (the optimizer holds the same `Var`s).
pub(crate) fn set_weights(
    model: &aha_model::Model,
    tensors: &BTreeMap<String, Tensor>,
    dir: &Path,
) -> Result<()> {
    for (name, var) in model.vars() {
        let t = tensors.get(name).ok_or_else(|| Error::Checkpoint {
            path: dir.into(),
            message: format!("weight `{name}` is missing"),
        })?;
        if t.dims() != var.dims() {
            return Err(Error::Checkpoint {
                path: dir.into(),
                message: format!(
                    "weight `{name}` has shape {:?}, the model {:?}",
                    t.dims(),
                    var.dims()
                ),
            });
        }
        var.set(&t.to_dtype(candle_core::DType::F32)?)?;
    }
    Ok(())
}
