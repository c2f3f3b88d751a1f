//! What to do with completions that hit the generation limit.
//!
//! A truncated completion has no final answer, so its reward says "wrong" even when the
//! reasoning was fine; DAPO (arXiv:2503.14476 §3.4) either masks such samples out of the loss
//! ("overlong filtering") or adds a soft penalty that ramps from 0 to −1 over the last `buffer`
//! tokens before the limit ("soft overlong punishment", eq. 13).

use serde::{Deserialize, Serialize};

/// The overlong policy, in the config as `overlong = { kind = "soft_penalty", buffer = 32, factor = 1.0 }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Overlong {
    /// Truncated completions train like any other.
    Keep,
    /// Truncated completions are excluded from the loss.
    Mask,
    /// Reward += factor · penalty, the penalty falling linearly from 0 at
    /// `max_len − buffer` tokens to −1 at `max_len`.
    SoftPenalty { buffer: usize, factor: f32 },
}

/// The effect on one completion: a reward change and whether its tokens stay in the loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverlongEffect {
    pub reward_delta: f32,
    pub keep: bool,
}

/// `len`: completion tokens; `truncated`: stopped by the length limit; `max_len`: that limit.
pub fn overlong_effect(
    policy: Overlong,
    len: usize,
    truncated: bool,
    max_len: usize,
) -> OverlongEffect {
    match policy {
        Overlong::Keep => OverlongEffect {
            reward_delta: 0.0,
            keep: true,
        },
        Overlong::Mask => OverlongEffect {
            reward_delta: 0.0,
            keep: !truncated,
        },
        Overlong::SoftPenalty { buffer, factor } => {
            let start = max_len.saturating_sub(buffer);
            let penalty = if len <= start {
                0.0
            } else if len <= max_len {
                (start as f32 - len as f32) / buffer.max(1) as f32
            } else {
                -1.0
            };
            OverlongEffect {
                reward_delta: factor * penalty,
                keep: true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_drops_only_truncated() {
        assert!(!overlong_effect(Overlong::Mask, 100, true, 100).keep);
        assert!(overlong_effect(Overlong::Mask, 100, false, 100).keep);
        assert!(overlong_effect(Overlong::Keep, 100, true, 100).keep);
    }

    #[test]
    fn soft_penalty_ramps_over_the_buffer() {
        let p = Overlong::SoftPenalty {
            buffer: 20,
            factor: 0.5,
        };
        let d = |len| overlong_effect(p, len, false, 100).reward_delta;
        assert_eq!(d(50), 0.0);
        assert_eq!(d(80), 0.0);
        // (80 − 90) / 20 = −0.5, times factor 0.5.
        assert!((d(90) + 0.25).abs() < 1e-6);
        assert!((d(100) + 0.5).abs() < 1e-6);
        assert!((d(130) + 0.5).abs() < 1e-6);
    }
}
