//! Group-relative advantages: each completion's reward compared with its group's.
//!
//! GRPO (DeepSeekMath, arXiv:2402.03300 §4.1) normalises by the group's mean and standard
//! deviation; Dr. GRPO (arXiv:2503.20783) drops the division because it up-weights groups whose
//! rewards barely differ (too easy or too hard questions). Rewards a verifier could not judge
//! (`None`) take no part in their group's statistics and get advantage 0.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How a group's rewards become advantages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvantageNorm {
    /// `(r − mean) / (std + eps)` with the unbiased (n − 1) std, as TRL and R1 do.
    MeanStd,
    /// `r − mean` (Dr. GRPO).
    MeanOnly,
}

/// rewards: (B·G) in groups of `g` consecutive completions → advantages (B·G).
pub fn group_advantages(
    rewards: &[Option<f32>],
    g: usize,
    norm: AdvantageNorm,
    eps: f32,
) -> Result<Vec<f32>> {
    if g == 0 || !rewards.len().is_multiple_of(g) {
        return Err(Error::Shape(format!(
            "group_advantages: {} rewards do not form groups of {g}",
            rewards.len()
        )));
    }
    let mut out = Vec::with_capacity(rewards.len());
    for group in rewards.chunks(g) {
        let judged: Vec<f64> = group.iter().flatten().map(|&r| r as f64).collect();
        let n = judged.len() as f64;
        let mean = if judged.is_empty() {
            0.0
        } else {
            judged.iter().sum::<f64>() / n
        };
        let std = if judged.len() < 2 {
            0.0
        } else {
            (judged.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        };
        for r in group {
            out.push(match r {
                None => 0.0,
                Some(r) => {
                    let centred = *r as f64 - mean;
                    match norm {
                        AdvantageNorm::MeanStd => (centred / (std + eps as f64)) as f32,
                        AdvantageNorm::MeanOnly => centred as f32,
                    }
                }
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn mean_std_matches_hand_values() {
        // Group 1: mean 0.5, unbiased std sqrt(1/3) = 0.577350; 0.5 / (0.577350 + 1e-4) = 0.865876.
        // Group 2: rewards 3, 1: mean 2, std sqrt(2) = 1.414214; 1 / 1.414314 = 0.707057.
        let r = [Some(1.0), Some(0.0), Some(0.0), Some(1.0)];
        let a = group_advantages(&r, 4, AdvantageNorm::MeanStd, 1e-4).unwrap();
        close(&a, &[0.865876, -0.865876, -0.865876, 0.865876]);
        let r = [Some(3.0), Some(1.0)];
        let a = group_advantages(&r, 2, AdvantageNorm::MeanStd, 1e-4).unwrap();
        close(&a, &[0.707057, -0.707057]);
    }

    #[test]
    fn mean_only_is_centred_reward() {
        let r = [
            Some(1.0),
            Some(0.0),
            Some(0.0),
            Some(0.0),
            Some(2.0),
            Some(2.0),
        ];
        let a = group_advantages(&r, 3, AdvantageNorm::MeanOnly, 1e-4).unwrap();
        close(
            &a,
            &[
                2.0 / 3.0,
                -1.0 / 3.0,
                -1.0 / 3.0,
                -4.0 / 3.0,
                2.0 / 3.0,
                2.0 / 3.0,
            ],
        );
    }

    #[test]
    fn uniform_group_has_zero_advantage_and_none_is_excluded() {
        let r = [Some(1.0), Some(1.0), Some(1.0)];
        let a = group_advantages(&r, 3, AdvantageNorm::MeanStd, 1e-6).unwrap();
        close(&a, &[0.0, 0.0, 0.0]);
        // The unjudged completion neither shifts the mean (0.5) nor gets an advantage.
        let r = [Some(1.0), None, Some(0.0)];
        let a = group_advantages(&r, 3, AdvantageNorm::MeanOnly, 1e-6).unwrap();
        close(&a, &[0.5, 0.0, -0.5]);
    }

    #[test]
    fn ragged_input_is_an_error() {
        assert!(group_advantages(&[Some(1.0); 5], 2, AdvantageNorm::MeanStd, 1e-4).is_err());
        assert!(group_advantages(&[Some(1.0); 4], 0, AdvantageNorm::MeanStd, 1e-4).is_err());
    }
}
