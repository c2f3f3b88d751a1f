//! From per-token losses to one scalar, the three ways practitioners do it.
//!
//! GRPO averages each sequence's tokens, then the sequences — so a token in a long completion
//! weighs less. DAPO (arXiv:2503.14476 §3.3) averages over all tokens of the batch. Dr. GRPO
//! (arXiv:2503.20783 §3.1) divides the token sum by a constant, `N · max_new_tokens`, removing
//! both length biases. The denominators are totals over the whole batch, passed in, so the
//! micro-batches of one gradient-accumulation step add up to exactly the full-batch loss.

use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossAggregation {
    /// Mean over each sequence's tokens, then mean over sequences (GRPO).
    SequenceMean,
    /// Mean over every token of the batch (DAPO).
    TokenMean,
    /// Token sum divided by `sequences · max_len` (Dr. GRPO).
    ConstantNormalizer,
}

/// Batch-wide denominators.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchTotals {
    /// Sequences in the whole batch (all micro-batches).
    pub sequences: usize,
    /// Loss tokens (sum of the mask) in the whole batch.
    pub tokens: f64,
    /// The constant length of Dr. GRPO: the generation limit `max_new_tokens`.
    pub max_len: usize,
}

/// per_token: (N, T) losses; mask: (N, T) f32, 1 on tokens that count → scalar, this
/// micro-batch's share of the batch loss.
pub fn aggregate(
    per_token: &Tensor,
    mask: &Tensor,
    how: LossAggregation,
    totals: BatchTotals,
) -> Result<Tensor> {
    if per_token.dims() != mask.dims() || per_token.rank() != 2 {
        return Err(Error::Shape(format!(
            "aggregate: per_token {:?} and mask {:?} must both be (N, T)",
            per_token.dims(),
            mask.dims()
        )));
    }
    let masked = (per_token * mask.to_dtype(DType::F32)?)?;
    let loss = match how {
        LossAggregation::SequenceMean => {
            // Rows without loss tokens contribute 0 (their sum is 0; the clamp avoids 0/0).
            let lens = mask.sum(D::Minus1)?.clamp(1.0, f64::INFINITY)?;
            let per_seq = (masked.sum(D::Minus1)? / lens)?;
            (per_seq.sum_all()? / totals.sequences.max(1) as f64)?
        }
        LossAggregation::TokenMean => (masked.sum_all()? / totals.tokens.max(1.0))?,
        LossAggregation::ConstantNormalizer => {
            let denom = (totals.sequences * totals.max_len).max(1) as f64;
            (masked.sum_all()? / denom)?
        }
    };
    Ok(loss)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn inputs() -> (Tensor, Tensor) {
        let dev = Device::Cpu;
        let l = Tensor::new(&[[1.0f32, 2.0, 3.0], [4.0, 9.0, 9.0]], &dev).unwrap();
        let m = Tensor::new(&[[1.0f32, 1.0, 1.0], [1.0, 0.0, 0.0]], &dev).unwrap();
        (l, m)
    }

    const TOTALS: BatchTotals = BatchTotals {
        sequences: 2,
        tokens: 4.0,
        max_len: 4,
    };

    fn value(how: LossAggregation, l: &Tensor, m: &Tensor) -> f32 {
        aggregate(l, m, how, TOTALS)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn three_aggregations_match_hand_values() {
        let (l, m) = inputs();
        // Sequence means 2 and 4 → 3. Token mean 10 / 4. Constant 10 / (2 · 4).
        assert!((value(LossAggregation::SequenceMean, &l, &m) - 3.0).abs() < 1e-6);
        assert!((value(LossAggregation::TokenMean, &l, &m) - 2.5).abs() < 1e-6);
        assert!((value(LossAggregation::ConstantNormalizer, &l, &m) - 1.25).abs() < 1e-6);
    }

    #[test]
    fn micro_batches_sum_to_the_batch_loss() {
        let (l, m) = inputs();
        for how in [
            LossAggregation::SequenceMean,
            LossAggregation::TokenMean,
            LossAggregation::ConstantNormalizer,
        ] {
            let whole = value(how, &l, &m);
            let parts: f32 = (0..2)
                .map(|i| {
                    let li = l.narrow(0, i, 1).unwrap();
                    let mi = m.narrow(0, i, 1).unwrap();
                    value(how, &li, &mi)
                })
                .sum();
            assert!((whole - parts).abs() < 1e-6, "{how:?}: {whole} vs {parts}");
        }
    }

    #[test]
    fn fully_masked_row_contributes_nothing() {
        let dev = Device::Cpu;
        let l = Tensor::new(&[[5.0f32, 5.0]], &dev).unwrap();
        let m = Tensor::zeros((1, 2), DType::F32, &dev).unwrap();
        let v = aggregate(&l, &m, LossAggregation::SequenceMean, TOTALS).unwrap();
        assert_eq!(v.to_scalar::<f32>().unwrap(), 0.0);
    }
}
