//! Per-token estimators of KL(π_θ ‖ π_ref) from the sampled token alone (Schulman, "Approximating
//! KL divergence", 2020).
//!
//! With `d = log π_ref − log π_θ` at the sampled token: k1 = −d (unbiased, high variance, can be
//! negative), k2 = d²/2 (biased, low variance), k3 = e^d − d − 1 (unbiased and ≥ 0; the one
//! GRPO and R1 use). The gradient flows through the policy logprobs only.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlEstimator {
    K1,
    K2,
    K3,
}

/// logp: (N, T) policy logprobs (with gradient); ref_logp: (N, T) reference logprobs → (N, T).
pub fn kl_penalty(logp: &Tensor, ref_logp: &Tensor, estimator: KlEstimator) -> Result<Tensor> {
    if logp.dims() != ref_logp.dims() {
        return Err(Error::Shape(format!(
            "kl_penalty: logp {:?} and ref_logp {:?} differ",
            logp.dims(),
            ref_logp.dims()
        )));
    }
    let d = (ref_logp.detach() - logp)?;
    let kl = match estimator {
        KlEstimator::K1 => d.neg()?,
        KlEstimator::K2 => (d.sqr()? * 0.5)?,
        KlEstimator::K3 => ((d.exp()? - &d)? - 1.0)?,
    };
    Ok(kl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn run(est: KlEstimator) -> (Vec<f32>, Vec<f32>) {
        let dev = Device::Cpu;
        // d = ref − logp = −1 and +0.5.
        let logp = Var::new(&[[-1.0f32, -2.0]], &dev).unwrap();
        let refp = Tensor::new(&[[-2.0f32, -1.5]], &dev).unwrap();
        let kl = kl_penalty(logp.as_tensor(), &refp, est).unwrap();
        let grads = kl.sum_all().unwrap().backward().unwrap();
        let g = grads.get(logp.as_tensor()).unwrap().flatten_all().unwrap();
        (
            kl.flatten_all().unwrap().to_vec1().unwrap(),
            g.to_vec1().unwrap(),
        )
    }

    fn close(a: &[f32], b: &[f32]) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn estimators_match_hand_values() {
        // k1 = −d: 1, −0.5; gradient ∂(−d)/∂logp = 1.
        let (v, g) = run(KlEstimator::K1);
        close(&v, &[1.0, -0.5]);
        close(&g, &[1.0, 1.0]);
        // k2 = d²/2: 0.5, 0.125; gradient −d: 1, −0.5.
        let (v, g) = run(KlEstimator::K2);
        close(&v, &[0.5, 0.125]);
        close(&g, &[1.0, -0.5]);
        // k3 = e^d − d − 1: e^−1 = 0.367879, e^0.5 − 1.5 = 0.148721; gradient 1 − e^d.
        let (v, g) = run(KlEstimator::K3);
        close(&v, &[0.367879, 0.148721]);
        close(&g, &[0.632121, -0.648721]);
    }

    #[test]
    fn identical_policies_have_zero_kl() {
        let dev = Device::Cpu;
        let p = Tensor::new(&[[-0.3f32, -4.0]], &dev).unwrap();
        for est in [KlEstimator::K1, KlEstimator::K2, KlEstimator::K3] {
            let kl = kl_penalty(&p, &p, est).unwrap();
            assert_eq!(
                kl.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                [0.0, 0.0]
            );
        }
    }
}
