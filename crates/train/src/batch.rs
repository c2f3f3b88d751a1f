//! Packing prompt + completion token lists into the padded tensors the training forward takes,
//! and scoring them: per-token logprobs (and entropy) of the completion tokens.
//!
//! Rows are right-padded, so causality alone keeps real tokens from seeing padding and no
//! attention mask is needed. Every per-token tensor here is (N, T−1), indexed by *target*: entry
//! `j` of a row is about token `j + 1` given tokens `..=j`. A row's loss tokens are selected by
//! a mask, never by slicing, so prompts of different lengths share one batch.

use aha_model::Model;
use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

/// One sequence to score: a prompt and what follows it.
#[derive(Debug, Clone, Copy)]
pub struct SeqRef<'a> {
    pub prompt: &'a [u32],
    pub completion: &'a [u32],
}

/// A right-padded batch.
#[derive(Debug, Clone)]
pub struct Packed {
    /// (N, T) u32
    pub ids: Tensor,
    pub prompt_lens: Vec<usize>,
    pub completion_lens: Vec<usize>,
    /// `T`
    pub width: usize,
}

/// Which targets a loss counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossTokens {
    Completion,
    /// Every token after the first (pretraining).
    All,
}

impl Packed {
    pub fn new(seqs: &[SeqRef<'_>], pad_id: u32, device: &Device) -> Result<Self> {
        if seqs.is_empty() {
            return Err(Error::Shape("pack: empty batch".into()));
        }
        let width = seqs
            .iter()
            .map(|s| s.prompt.len() + s.completion.len())
            .max()
            .unwrap_or(0);
        if width < 2 {
            return Err(Error::Shape(
                "pack: every batch needs a sequence of at least 2 tokens".into(),
            ));
        }
        let mut ids = Vec::with_capacity(seqs.len() * width);
        for (i, s) in seqs.iter().enumerate() {
            if s.prompt.is_empty() {
                return Err(Error::Shape(format!(
                    "pack: sequence {i} has an empty prompt"
                )));
            }
            ids.extend_from_slice(s.prompt);
            ids.extend_from_slice(s.completion);
            ids.resize((i + 1) * width, pad_id);
        }
        Ok(Self {
            ids: Tensor::from_vec(ids, (seqs.len(), width), device)?,
            prompt_lens: seqs.iter().map(|s| s.prompt.len()).collect(),
            completion_lens: seqs.iter().map(|s| s.completion.len()).collect(),
            width,
        })
    }

    pub fn rows(&self) -> usize {
        self.prompt_lens.len()
    }

    /// (N, T−1) f32 mask of the loss targets; `keep[i] == false` zeroes row i.
    pub fn loss_mask(&self, which: LossTokens, keep: Option<&[bool]>) -> Result<Tensor> {
        let w = self.width - 1;
        let mut m = vec![0f32; self.rows() * w];
        for i in 0..self.rows() {
            if keep.is_some_and(|k| !k[i]) {
                continue;
            }
            let (p, c) = (self.prompt_lens[i], self.completion_lens[i]);
            let first = match which {
                LossTokens::Completion => p - 1,
                LossTokens::All => 0,
            };
            for j in first..p + c - 1 {
                m[i * w + j] = 1.0;
            }
        }
        Ok(Tensor::from_vec(m, (self.rows(), w), self.ids.device())?)
    }

    /// Places per-completion-token values (e.g. rollout logprobs, one list per row, as long as
    /// the completion) at their target positions: (N, T−1), zero elsewhere.
    pub fn place_completion_values(&self, values: &[&[f32]]) -> Result<Tensor> {
        let w = self.width - 1;
        let mut out = vec![0f32; self.rows() * w];
        for (i, v) in values.iter().enumerate() {
            if v.len() != self.completion_lens[i] {
                return Err(Error::Shape(format!(
                    "row {i}: {} values for a completion of {} tokens",
                    v.len(),
                    self.completion_lens[i]
                )));
            }
            let start = i * w + self.prompt_lens[i] - 1;
            out[start..start + v.len()].copy_from_slice(v);
        }
        Ok(Tensor::from_vec(out, (self.rows(), w), self.ids.device())?)
    }
}

/// Logprobs of every target under `model` with logits divided by `temperature` (so they match
/// the sampling distribution of a rollout at that temperature), and optionally the entropy of
/// that distribution (no gradient). Builds the autodiff graph when `model` is trainable.
/// Returns (N, T−1) each.
pub fn token_logprobs(
    model: &Model,
    packed: &Packed,
    temperature: f64,
    with_entropy: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let t = packed.width;
    let hidden = model
        .forward(&packed.ids, None, None)?
        .narrow(1, 0, t - 1)?;
    let targets = packed.ids.narrow(1, 1, t - 1)?;
    Ok(model.head_logprobs(&hidden, &targets, temperature, with_entropy)?)
}

/// Σ(x·mask) / Σmask as an f64 (0 when the mask is empty), for statistics.
pub fn masked_mean(x: &Tensor, mask: &Tensor) -> Result<f64> {
    let total = mask.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    if total == 0.0 {
        return Ok(0.0);
    }
    let s = (x.detach() * mask)?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    Ok(s / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_placement_follow_targets() {
        let dev = Device::Cpu;
        let seqs = [
            SeqRef {
                prompt: &[1, 2],
                completion: &[3, 4, 5],
            },
            SeqRef {
                prompt: &[6, 7, 8],
                completion: &[9],
            },
        ];
        let p = Packed::new(&seqs, 0, &dev).unwrap();
        assert_eq!(
            p.ids.to_vec2::<u32>().unwrap(),
            [[1, 2, 3, 4, 5], [6, 7, 8, 9, 0]]
        );
        // Targets are ids[1..]: row 0 → 2 3 4 5, completion targets at 1..4.
        let m = p.loss_mask(LossTokens::Completion, None).unwrap();
        assert_eq!(
            m.to_vec2::<f32>().unwrap(),
            [[0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0]]
        );
        let m = p.loss_mask(LossTokens::All, Some(&[false, true])).unwrap();
        assert_eq!(
            m.to_vec2::<f32>().unwrap(),
            [[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]]
        );
        let v = p
            .place_completion_values(&[&[0.1, 0.2, 0.3], &[0.9]])
            .unwrap();
        assert_eq!(
            v.to_vec2::<f32>().unwrap(),
            [[0.0, 0.1, 0.2, 0.3], [0.0, 0.0, 0.9, 0.0]]
        );
        assert!(p.place_completion_values(&[&[0.1], &[0.9]]).is_err());
    }
}
