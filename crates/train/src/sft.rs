//! Supervised fine-tuning: next-token cross-entropy on completion tokens (or on every token, for
//! pretraining a base model), with micro-batches and the shared optimizer machinery.
//!
//! [`SftTrainer`] is the library API (`aha sft` and the demo's pretraining call it); it owns no
//! data pipeline and writes no files except through [`SftTrainer::save_optimizer`].
//! `sft_run` is the on-disk run (config, data order, checkpoints, resume).

use std::path::Path;
use std::sync::Arc;

use aha_model::Model;
use serde::{Deserialize, Serialize};

use crate::batch::{self, LossTokens, Packed, SeqRef};
use crate::collective::{self, shard, sum_gradients, Collective};
use crate::optim::{GradAccumulator, OptimConfig, UpdateCounters, Updater};
use crate::{Error, Result};

/// One training example, already tokenized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub prompt_ids: Vec<u32>,
    pub completion_ids: Vec<u32>,
}

/// Which tokens the SFT loss covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossOn {
    /// Completion (assistant) tokens only: fine-tuning.
    Completion,
    /// Every token after the first: pretraining.
    All,
}

fn micro_batch() -> usize {
    16
}
fn loss_on() -> LossOn {
    LossOn::Completion
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftConfig {
    #[serde(default)]
    pub optim: OptimConfig,
    /// Sequences per forward/backward; a step's batch is split into these.
    #[serde(default = "micro_batch")]
    pub micro_batch_size: usize,
    #[serde(default = "loss_on")]
    pub loss_on: LossOn,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            optim: OptimConfig::default(),
            micro_batch_size: micro_batch(),
            loss_on: loss_on(),
        }
    }
}

/// What one SFT step measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SftStepStats {
    /// Mean cross-entropy (nats) over the loss tokens.
    pub loss: f64,
    /// Loss tokens in the batch.
    pub tokens: usize,
    pub grad_norm: f64,
    pub lr: f64,
    /// The update was skipped for a non-finite loss or gradient.
    pub skipped: bool,
}

pub struct SftTrainer {
    model: Model,
    updater: Updater,
    cfg: SftConfig,
    pad_id: u32,
    /// The ranks of a data-parallel job (one process by default).
    comm: Arc<dyn Collective>,
}

impl SftTrainer {
    /// `model` must be trainable (loaded with `trainable = true`); `total_steps` sizes the
    /// learning-rate schedule.
    pub fn new(model: Model, cfg: SftConfig, total_steps: usize) -> Result<Self> {
        cfg.optim.validate("optim")?;
        if cfg.micro_batch_size == 0 {
            return Err(Error::config("micro_batch_size", "must be at least 1"));
        }
        if model.vars().is_empty() {
            return Err(Error::config(
                "model",
                "the model has no trainable parameters (load it with trainable = true)",
            ));
        }
        let updater = cfg.optim.updater(model.vars(), total_steps)?;
        let pad_id = model.config().pad_token_id.unwrap_or(0);
        Ok(Self {
            model,
            updater,
            cfg,
            pad_id,
            comm: collective::single(),
        })
    }

    /// Makes this trainer one rank of a data-parallel job: every rank is given the whole batch
    /// and trains its contiguous share of it; gradients and loss are summed over ranks.
    pub fn with_collective(mut self, comm: Arc<dyn Collective>) -> Self {
        self.comm = comm;
        self
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn counters(&self) -> UpdateCounters {
        self.updater.counters
    }

    /// One optimizer update on `batch` (split into micro-batches; gradients accumulated so the
    /// result equals one pass over the whole batch).
    pub fn step(&mut self, batch: &[Example]) -> Result<SftStepStats> {
        let which = match self.cfg.loss_on {
            LossOn::Completion => LossTokens::Completion,
            LossOn::All => LossTokens::All,
        };
        let seqs: Vec<SeqRef<'_>> = batch
            .iter()
            .map(|e| SeqRef {
                prompt: &e.prompt_ids,
                completion: &e.completion_ids,
            })
            .collect();
        let tokens: usize = seqs
            .iter()
            .map(|s| match which {
                LossTokens::Completion => s.completion.len(),
                LossTokens::All => s.prompt.len() + s.completion.len() - 1,
            })
            .sum();
        if tokens == 0 {
            return Err(Error::Shape("SFT batch has no loss tokens".into()));
        }
        let device = self.model.device().clone();
        let mine = shard(seqs.len(), self.comm.rank(), self.comm.size());
        let (acc, loss_sum) = crate::worker::on_rayon_worker(|| -> Result<_> {
            let mut acc = GradAccumulator::new();
            let mut loss_sum = 0.0;
            for chunk in seqs[mine].chunks(self.cfg.micro_batch_size) {
                let packed = Packed::new(chunk, self.pad_id, &device)?;
                let mask = packed.loss_mask(which, None)?;
                let (logp, _) = batch::token_logprobs(&self.model, &packed, 1.0, false)?;
                // Σ −log p over this micro-batch's loss tokens / the batch's loss tokens.
                let loss = ((logp * &mask)?.sum_all()?.neg()? / tokens as f64)?;
                loss_sum += crate::optim::grads::scalar(&loss)?;
                acc.add(self.model.vars(), &aha_model::backward(&loss)?)?;
            }
            Ok((acc, loss_sum))
        })?;
        let mut total = [loss_sum];
        self.comm.sum_f64(&mut total)?;
        let loss_sum = total[0];
        let grads = sum_gradients(&*self.comm, self.model.vars(), acc.finish())?;
        let out = self.updater.apply(loss_sum, grads)?;
        Ok(SftStepStats {
            loss: loss_sum,
            tokens,
            grad_norm: out.grad_norm,
            lr: out.lr,
            skipped: out.skipped,
        })
    }

    /// Writes the optimizer state (moments and step count).
    pub fn save_optimizer(&self, path: &Path) -> Result<()> {
        self.updater.optimizer.save(path)
    }

    /// Reads back what [`SftTrainer::save_optimizer`] wrote, with the update counters saved
    /// beside it, so that a resumed run continues bit for bit.
    pub fn load_optimizer(&mut self, path: &Path, counters: UpdateCounters) -> Result<()> {
        let device = self.model.device().clone();
        self.updater.optimizer.load(path, &device)?;
        self.updater.counters = counters;
        Ok(())
    }
}
