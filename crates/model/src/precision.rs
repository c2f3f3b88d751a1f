//! The precision policy, in one place.
//!
//! [`Precision::Bf16`] stores rollout weights and runs activations, matmuls and their backward in
//! bf16; everything that accumulates stays f32:
//! - master weights, gradients and optimizer state (the trainable [`candle_core::Var`]s are f32;
//!   the forward casts each to bf16 at use, and that cast's backward returns f32 gradients);
//! - softmax, log-softmax, entropy and the RMSNorm statistic ([`reduce_in_f32`]);
//! - logits handed to samplers and losses ([`crate::Model::logits`] returns f32), and the losses.
//!
//! [`Precision::F32`] is f32 throughout, and is what the fused CPU kernels take.

use candle_core::{DType, Result, Tensor};
use serde::{Deserialize, Serialize};

/// The dtype of activations and matmuls (config key `dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

impl Precision {
    /// The dtype activations and matmuls run in.
    pub fn compute_dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!("unknown dtype {other:?}: expected `f32` or `bf16`")),
        }
    }
}

/// A parameter (weight, bias, table) in the dtype of the activation it meets; a no-op when they
/// agree. Differentiable: the gradient flows back to the f32 master in f32.
pub(crate) fn at_use(param: &Tensor, dtype: DType) -> Result<Tensor> {
    param.to_dtype(dtype)
}

/// x in f32 if it is a 16-bit float, unchanged otherwise (f64 stays f64: tests take finite
/// differences through these ops in f64).
pub(crate) fn at_least_f32(x: &Tensor) -> Result<Tensor> {
    match x.dtype() {
        DType::BF16 | DType::F16 => x.to_dtype(DType::F32),
        _ => Ok(x.clone()),
    }
}

/// `f(x)` computed in at least f32 and returned in x's dtype: for reductions (softmax, RMS) whose
/// sums lose too much in bf16.
pub(crate) fn reduce_in_f32(
    x: &Tensor,
    f: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    f(&at_least_f32(x)?)?.to_dtype(x.dtype())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_names_round_trip() {
        for p in [Precision::F32, Precision::Bf16] {
            assert_eq!(p.name().parse::<Precision>(), Ok(p));
        }
        assert_eq!(Precision::Bf16.compute_dtype(), DType::BF16);
        let err = "fp16".parse::<Precision>().unwrap_err();
        assert!(err.contains("fp16") && err.contains("bf16"), "{err}");
    }
}
