//! Gradient bookkeeping between backward and the optimizer: accumulation over micro-batches,
//! the global norm, clipping, and the finiteness check that decides whether a step is skipped.
//!
//! Accumulating into one buffer per parameter keeps memory at one micro-batch's activations plus
//! one copy of the gradients, whatever the batch size.

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

use crate::optim::{fused, Gradients};
use crate::{Error, Result};

/// Sums the gradients of successive micro-batches.
#[derive(Default)]
pub struct GradAccumulator {
    sums: Gradients,
}

impl GradAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one backward pass's gradients. A parameter without a gradient means it took no part
    /// in the loss (a cut graph, e.g. a fused op without backward): that is an error.
    pub fn add(&mut self, vars: &BTreeMap<String, Var>, store: &GradStore) -> Result<()> {
        for (name, var) in vars {
            let g = store
                .get(var.as_tensor())
                .ok_or_else(|| Error::Shape(format!("parameter `{name}` received no gradient")))?;
            let sum = match self.sums.remove(name) {
                Some(s) => (s + g)?,
                None => g.clone(),
            };
            self.sums.insert(name.clone(), sum);
        }
        Ok(())
    }

    pub fn finish(self) -> Gradients {
        self.sums
    }
}

/// √(Σ‖g‖²) over every parameter, summed in f64; NaN or ∞ when any gradient is not finite.
pub fn global_norm(grads: &Gradients) -> Result<f64> {
    let mut sq = 0.0f64;
    for g in grads.values() {
        sq += if fused::applies(g) {
            fused::sum_sq(g)?
        } else {
            g.to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?
        };
    }
    Ok(sq.sqrt())
}

/// The factor that brings a gradient of norm `norm` down to `max_norm` (as
/// `torch.nn.utils.clip_grad_norm_`), or 1 when it is within it, not finite, or `max_norm <= 0`.
pub fn clip_scale(norm: f64, max_norm: f64) -> f64 {
    if max_norm > 0.0 && norm.is_finite() && norm > max_norm {
        max_norm / (norm + 1e-6)
    } else {
        1.0
    }
}

/// Scales the gradients so their global norm is at most `max_norm`; returns the norm before
/// clipping. `max_norm <= 0` disables. (The trainers fold the scale into AdamW instead, see
/// [`crate::optim::AdamW::step_scaled`].)
pub fn clip_grad_norm(grads: &mut Gradients, max_norm: f64) -> Result<f64> {
    let norm = global_norm(grads)?;
    let scale = clip_scale(norm, max_norm);
    if scale != 1.0 {
        for g in grads.values_mut() {
            *g = g.affine(scale, 0.0)?;
        }
    }
    Ok(norm)
}

/// A scalar loss tensor's value, for the finiteness check and logging.
pub fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn accumulate_then_clip() {
        let dev = Device::Cpu;
        let w = Var::new(&[1.0f32, 2.0], &dev).unwrap();
        let vars = BTreeMap::from([("w".to_string(), w.clone())]);
        let mut acc = GradAccumulator::new();
        // d/dw Σ 3w = 3 (twice) → 6, 6; norm √72.
        for _ in 0..2 {
            let store = (w.as_tensor() * 3.0)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            acc.add(&vars, &store).unwrap();
        }
        let mut g = acc.finish();
        let norm = clip_grad_norm(&mut g, 1.0).unwrap();
        assert!((norm - 72f64.sqrt()).abs() < 1e-5);
        let after = global_norm(&g).unwrap();
        assert!((after - 1.0).abs() < 1e-4, "{after}");
    }

    #[test]
    fn parameter_without_gradient_is_reported() {
        let dev = Device::Cpu;
        let w = Var::new(&[1.0f32], &dev).unwrap();
        let unused = Var::new(&[1.0f32], &dev).unwrap();
        let vars = BTreeMap::from([("w".to_string(), w.clone()), ("u".to_string(), unused)]);
        let store = w.as_tensor().sum_all().unwrap().backward().unwrap();
        let err = GradAccumulator::new().add(&vars, &store).unwrap_err();
        assert!(err.to_string().contains("`u`"), "{err}");
    }

    #[test]
    fn non_finite_gradient_gives_non_finite_norm() {
        let g = BTreeMap::from([(
            "w".to_string(),
            Tensor::new(&[f32::NAN, 1.0], &Device::Cpu).unwrap(),
        )]);
        assert!(!global_norm(&g).unwrap().is_finite());
    }
}
