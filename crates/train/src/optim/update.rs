//! One optimizer update with its safety rails: learning rate from the schedule, gradient-norm
//! clipping, and skipping updates whose loss or gradients are not finite. A run that keeps
//! producing non-finite values stops with [`Error::Diverged`] rather than writing NaN weights
//! (the last good checkpoint stays the newest).

use serde::{Deserialize, Serialize};

use crate::optim::{clip_scale, global_norm, AdamW, Gradients, LrSchedule};
use crate::{Error, Result};

/// Counters that must survive a resume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateCounters {
    /// Updates attempted (the schedule's index), skipped ones included.
    pub updates: usize,
    /// Updates skipped for non-finite values, in the whole run.
    pub skipped: usize,
    /// Consecutive skipped updates so far.
    pub bad_in_a_row: usize,
}

pub struct Updater {
    pub optimizer: AdamW,
    pub schedule: LrSchedule,
    /// Clip the global gradient norm to this (≤ 0: no clipping).
    pub max_grad_norm: f64,
    /// Consecutive skipped updates tolerated before the run stops.
    pub max_bad_updates: usize,
    pub counters: UpdateCounters,
}

/// What one update did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateOutcome {
    /// Gradient norm before clipping (NaN/∞ when skipped for it).
    pub grad_norm: f64,
    pub lr: f64,
    pub skipped: bool,
}

impl Updater {
    /// Applies `grads` (of a loss whose value was `loss`) unless either is non-finite.
    pub fn apply(&mut self, loss: f64, grads: Gradients) -> Result<UpdateOutcome> {
        let lr = self.schedule.lr_at(self.counters.updates);
        self.counters.updates += 1;
        let grad_norm = global_norm(&grads)?;
        if !loss.is_finite() || !grad_norm.is_finite() {
            self.counters.skipped += 1;
            self.counters.bad_in_a_row += 1;
            if self.counters.bad_in_a_row > self.max_bad_updates {
                return Err(Error::Diverged(format!(
                    "{} updates in a row had a non-finite loss ({loss}) or gradient norm \
                     ({grad_norm}); lower the learning rate or check the data",
                    self.counters.bad_in_a_row
                )));
            }
            return Ok(UpdateOutcome {
                grad_norm,
                lr,
                skipped: true,
            });
        }
        self.counters.bad_in_a_row = 0;
        let scale = clip_scale(grad_norm, self.max_grad_norm);
        self.optimizer.step_scaled(&grads, lr, scale)?;
        Ok(UpdateOutcome {
            grad_norm,
            lr,
            skipped: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{AdamWConfig, LrDecay};
    use candle_core::{Device, Tensor, Var};
    use std::collections::BTreeMap;

    #[test]
    fn non_finite_updates_are_skipped_then_stop_the_run() {
        let w = Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let vars = BTreeMap::from([("w".to_string(), w.clone())]);
        let mut up = Updater {
            optimizer: AdamW::new(&vars, AdamWConfig::default()).unwrap(),
            schedule: LrSchedule {
                peak: 0.1,
                warmup: 0,
                decay: LrDecay::Constant,
                min_ratio: 0.0,
                total: 10,
            },
            max_grad_norm: 1.0,
            max_bad_updates: 1,
            counters: UpdateCounters::default(),
        };
        let g =
            |x: f32| BTreeMap::from([("w".to_string(), Tensor::new(&[x], &Device::Cpu).unwrap())]);
        let out = up.apply(f64::NAN, g(1.0)).unwrap();
        assert!(out.skipped);
        assert_eq!(w.as_tensor().to_vec1::<f32>().unwrap(), [1.0]);
        let out = up.apply(0.5, g(1.0)).unwrap();
        assert!(!out.skipped);
        assert!(w.as_tensor().to_vec1::<f32>().unwrap()[0] < 1.0);
        up.apply(0.5, g(f32::INFINITY)).unwrap();
        let err = up.apply(0.5, g(f32::NAN)).unwrap_err();
        assert!(matches!(err, Error::Diverged(_)), "{err}");
        assert_eq!(up.counters.skipped, 3);
        assert_eq!(up.counters.updates, 4);
    }
}
