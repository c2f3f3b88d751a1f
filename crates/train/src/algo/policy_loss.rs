//! The clipped surrogate policy loss of PPO as GRPO uses it, per token.
//!
//! `loss_t = −min(r_t·A, clip(r_t, 1 − ε_low, 1 + ε_high)·A)` with `r_t = π_θ / π_old` at the
//! sampled token. Separate ε_low and ε_high are DAPO's "clip-higher" (arXiv:2503.14476 §3.1): a
//! larger ε_high lets rare tokens with positive advantage grow, which keeps entropy from
//! collapsing. This file does not aggregate over tokens (see `aggregate.rs`) nor add the KL term.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The trust region of the ratio: `[1 − low, 1 + high]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clip {
    pub low: f32,
    pub high: f32,
}

/// Per-token surrogate loss and which tokens the clip silenced.
#[derive(Debug, Clone)]
pub struct PolicyLoss {
    /// (N, T), differentiable in the policy logprobs.
    pub per_token: Tensor,
    /// (N, T) f32: 1 where the clipped branch was taken and the gradient is zero.
    pub clipped: Tensor,
}

/// logp: (N, T) policy logprobs of the sampled tokens (with gradient); old_logp: (N, T) the
/// same under π_old (treated as constant); advantages: (N) one per sequence.
pub fn policy_loss(
    logp: &Tensor,
    old_logp: &Tensor,
    advantages: &Tensor,
    clip: Clip,
) -> Result<PolicyLoss> {
    let (n, t) = logp.dims2()?;
    if old_logp.dims() != [n, t] || advantages.dims() != [n] {
        return Err(Error::Shape(format!(
            "policy_loss: logp {:?} needs old_logp ({n}, {t}) and advantages ({n}), got {:?} and {:?}",
            logp.dims(),
            old_logp.dims(),
            advantages.dims()
        )));
    }
    let ratio = (logp - old_logp.detach())?.exp()?;
    let clipped_ratio = ratio.clamp(1.0 - clip.low as f64, 1.0 + clip.high as f64)?;
    let adv = advantages.detach().unsqueeze(1)?;
    let unclipped_obj = ratio.broadcast_mul(&adv)?;
    let clipped_obj = clipped_ratio.broadcast_mul(&adv)?;
    let per_token = unclipped_obj.minimum(&clipped_obj)?.neg()?;
    let clipped = clipped_obj.lt(&unclipped_obj)?.to_dtype(DType::F32)?;
    Ok(PolicyLoss { per_token, clipped })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn clipped_surrogate_values_and_gradients() {
        let dev = Device::Cpu;
        // Ratios 1.5, 1.5, 0.5, 0.5, 1.0 against advantages 1, −1, −1, 1, 2; clip [0.8, 1.28].
        let ratios = [1.5f32, 1.5, 0.5, 0.5, 1.0];
        let logp = Var::from_vec(ratios.iter().map(|r| r.ln()).collect(), (5, 1), &dev).unwrap();
        let old = Tensor::zeros((5, 1), DType::F32, &dev).unwrap();
        let adv = Tensor::new(&[1.0f32, -1.0, -1.0, 1.0, 2.0], &dev).unwrap();
        let clip = Clip {
            low: 0.2,
            high: 0.28,
        };
        let out = policy_loss(logp.as_tensor(), &old, &adv, clip).unwrap();
        let loss: Vec<f32> = out.per_token.flatten_all().unwrap().to_vec1().unwrap();
        let want = [-1.28f32, 1.5, 0.8, -0.5, -2.0];
        for (a, b) in loss.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{loss:?}");
        }
        let clipped: Vec<f32> = out.clipped.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(clipped, [1.0, 0.0, 1.0, 0.0, 0.0]);
        // d loss / d logp = −A·r where unclipped, 0 where clipped.
        let grads = out.per_token.sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = grads
            .get(logp.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want = [0.0f32, 1.5, 0.0, -0.5, -2.0];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{g:?}");
        }
    }

    #[test]
    fn on_policy_ratio_is_one_but_gradient_is_minus_advantage() {
        let dev = Device::Cpu;
        let logp = Var::new(&[[-0.7f32, -2.0]], &dev).unwrap();
        let old = logp.as_tensor().detach();
        let adv = Tensor::new(&[0.5f32], &dev).unwrap();
        let clip = Clip {
            low: 0.2,
            high: 0.2,
        };
        let out = policy_loss(logp.as_tensor(), &old, &adv, clip).unwrap();
        let loss: Vec<f32> = out.per_token.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(loss, [-0.5, -0.5]);
        let grads = out.per_token.sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = grads
            .get(logp.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(g, [-0.5, -0.5]);
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let dev = Device::Cpu;
        let a = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
        let b = Tensor::zeros((2, 2), DType::F32, &dev).unwrap();
        let adv = Tensor::zeros(2, DType::F32, &dev).unwrap();
        let clip = Clip {
            low: 0.2,
            high: 0.2,
        };
        assert!(policy_loss(&a, &b, &adv, clip).is_err());
    }
}
