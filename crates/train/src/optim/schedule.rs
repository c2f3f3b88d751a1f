//! Learning-rate schedule: linear warmup, then constant, linear or cosine decay to a floor.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrDecay {
    Constant,
    Linear,
    Cosine,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    pub peak: f64,
    /// Updates spent ramping up from `peak / warmup` to `peak`.
    pub warmup: usize,
    pub decay: LrDecay,
    /// The floor, as a fraction of `peak`, reached at the last update.
    pub min_ratio: f64,
    /// Updates in the whole run.
    pub total: usize,
}

impl LrSchedule {
    /// The learning rate of update `u` (0-based). Warmup starts at `peak / warmup`, not 0, so
    /// the first update is not wasted.
    pub fn lr_at(&self, u: usize) -> f64 {
        if u < self.warmup {
            return self.peak * (u + 1) as f64 / self.warmup as f64;
        }
        let floor = self.peak * self.min_ratio;
        let span = self
            .total
            .saturating_sub(self.warmup)
            .saturating_sub(1)
            .max(1);
        let p = ((u - self.warmup) as f64 / span as f64).min(1.0);
        match self.decay {
            LrDecay::Constant => self.peak,
            LrDecay::Linear => floor + (self.peak - floor) * (1.0 - p),
            LrDecay::Cosine => {
                floor + (self.peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(decay: LrDecay) -> LrSchedule {
        LrSchedule {
            peak: 1.0,
            warmup: 2,
            decay,
            min_ratio: 0.1,
            total: 7,
        }
    }

    #[test]
    fn warmup_then_decay() {
        let lrs = |d| (0..7).map(|u| sched(d).lr_at(u)).collect::<Vec<f64>>();
        let close = |a: Vec<f64>, b: &[f64]| {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}");
            }
        };
        close(lrs(LrDecay::Constant), &[0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        // After warmup, 5 updates go from peak to floor 0.1 in 4 equal parts.
        close(
            lrs(LrDecay::Linear),
            &[0.5, 1.0, 1.0, 0.775, 0.55, 0.325, 0.1],
        );
        // Cosine at p = 0.5 is halfway: 0.1 + 0.9 · 0.5 = 0.55.
        let c = lrs(LrDecay::Cosine);
        assert!((c[4] - 0.55).abs() < 1e-9 && (c[6] - 0.1).abs() < 1e-9);
        assert!(c[3] > 0.55 && c[5] < 0.55);
    }
}
