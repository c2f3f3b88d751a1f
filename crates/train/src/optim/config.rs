//! The optimizer section of a config (`[optim]`), shared by `aha train` and `aha sft`.

use std::collections::BTreeMap;

use candle_core::Var;
use serde::{Deserialize, Serialize};

use crate::optim::{AdamW, AdamWConfig, LrDecay, LrSchedule, UpdateCounters, Updater};
use crate::{Error, Result};

fn lr() -> f64 {
    1e-5
}
fn max_grad_norm() -> f64 {
    1.0
}
fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}
fn eps() -> f64 {
    1e-8
}
fn decay() -> LrDecay {
    LrDecay::Constant
}
fn max_bad_updates() -> usize {
    5
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// Peak learning rate.
    #[serde(default = "lr")]
    pub lr: f64,
    /// Updates of linear warmup.
    #[serde(default)]
    pub warmup: usize,
    #[serde(default = "decay")]
    pub decay: LrDecay,
    /// Floor of the decay as a fraction of `lr`.
    #[serde(default)]
    pub min_lr_ratio: f64,
    /// Global gradient-norm clip (0 disables).
    #[serde(default = "max_grad_norm")]
    pub max_grad_norm: f64,
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default = "beta1")]
    pub beta1: f64,
    #[serde(default = "beta2")]
    pub beta2: f64,
    #[serde(default = "eps")]
    pub eps: f64,
    /// Consecutive non-finite updates skipped before the run stops.
    #[serde(default = "max_bad_updates")]
    pub max_bad_updates: usize,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: lr(),
            warmup: 0,
            decay: decay(),
            min_lr_ratio: 0.0,
            max_grad_norm: max_grad_norm(),
            weight_decay: 0.0,
            beta1: beta1(),
            beta2: beta2(),
            eps: eps(),
            max_bad_updates: max_bad_updates(),
        }
    }
}

impl OptimConfig {
    /// Checks ranges; `prefix` is the section's dotted name for messages (`optim`).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let bad = |f: &str, m: &str| Err(Error::config(format!("{prefix}.{f}"), m));
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", "must be a positive number");
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return bad("min_lr_ratio", "must be in [0, 1]");
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return bad("beta1", "betas must be in [0, 1)");
        }
        if self.eps.is_nan() || self.eps <= 0.0 {
            return bad("eps", "must be positive");
        }
        if !nonneg(self.weight_decay) || !nonneg(self.max_grad_norm) {
            return bad("weight_decay", "weight_decay and max_grad_norm must be ≥ 0");
        }
        Ok(())
    }

    /// An updater over `vars` for a run of `total_updates` updates.
    pub fn updater(&self, vars: &BTreeMap<String, Var>, total_updates: usize) -> Result<Updater> {
        let adamw = AdamWConfig {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
        };
        Ok(Updater {
            optimizer: AdamW::new(vars, adamw)?,
            schedule: LrSchedule {
                peak: self.lr,
                warmup: self.warmup,
                decay: self.decay,
                min_ratio: self.min_lr_ratio,
                total: total_updates,
            },
            max_grad_norm: self.max_grad_norm,
            max_bad_updates: self.max_bad_updates,
            counters: UpdateCounters::default(),
        })
    }
}

/// `x ≥ 0` and not NaN.
fn nonneg(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}
