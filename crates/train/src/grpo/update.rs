//! The policy update of one GRPO step: μ passes over the step's sequences, each pass split into
//! minibatches (one optimizer update each), each minibatch into micro-batches whose gradients
//! are accumulated (memory is bounded by the micro-batch).
//!
//! π_old, the denominator of the importance ratio:
//! - one update per step (μ = 1, one minibatch): π_old is the current policy, detached. The ratio
//!   is exactly 1 but its gradient is ∇log π_θ, so the loss is the plain policy gradient, and no
//!   second forward is spent.
//! - several updates per step: π_old is the rollout's own logprobs. The engine computed them
//!   from the same weights at the same temperature (`log_softmax(logits / T)`, before top-k/p),
//!   which is what this trainer recomputes, so a no-grad recompute would only reproduce them
//!   (to rounding) at the cost of a forward pass.
//!
//! The reference model's logprobs (β > 0) are computed once per micro-batch, without gradient,
//! and reused across passes. Rewards, advantages and metrics files are not this file's.

use aha_model::Model;
use candle_core::Tensor;

use crate::algo::{self, BatchTotals, Clip};
use crate::batch::{self, LossTokens, Packed, SeqRef};
use crate::config::GrpoConfig;
use crate::optim::{grads::scalar, GradAccumulator, Updater};
use crate::Result;

/// One completion as the update sees it.
#[derive(Debug, Clone, Copy)]
pub struct TrainSeq<'a> {
    pub prompt: &'a [u32],
    pub completion: &'a [u32],
    /// Sampling-time logprobs of `completion`, one per token.
    pub rollout_logprobs: &'a [f32],
    pub advantage: f32,
}

/// What the update measured, averaged over its optimizer updates (statistics of the first pass
/// for entropy, KL and clip fraction: later passes see a policy that has already moved).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UpdateStats {
    pub loss: f64,
    /// Mean per-token KL estimate to the reference; `None` when β = 0.
    pub kl: Option<f64>,
    pub clip_fraction: f64,
    pub entropy: f64,
    pub grad_norm: f64,
    pub lr: f64,
    pub updates: usize,
    pub skipped_updates: usize,
    /// Completion tokens trained on (one pass).
    pub tokens: usize,
}

/// Settings of the update that come from outside `[grpo]`.
#[derive(Debug, Clone, Copy)]
pub struct UpdateContext {
    pub temperature: f64,
    pub max_new_tokens: usize,
    pub pad_id: u32,
}

pub fn update(
    policy: &Model,
    reference: Option<&Model>,
    updater: &mut Updater,
    seqs: &[TrainSeq<'_>],
    cfg: &GrpoConfig,
    ctx: UpdateContext,
) -> Result<UpdateStats> {
    let mut stats = UpdateStats::default();
    if seqs.is_empty() {
        return Ok(stats);
    }
    let on_policy = cfg.passes == 1 && cfg.minibatches == 1;
    let clip = Clip {
        low: cfg.clip_low,
        high: cfg.clip_high,
    };
    let plan = plan_batches(seqs, cfg.minibatches, cfg.micro_batch_size);
    let reference_logprobs = match (reference, cfg.beta > 0.0) {
        (Some(r), true) => Some(reference_logprobs(r, seqs, &plan, ctx)?),
        _ => None,
    };
    let mut first = PassTotals::default();
    for pass in 0..cfg.passes {
        for (m, micro_batches) in plan.iter().enumerate() {
            let members: Vec<usize> = micro_batches.iter().flatten().copied().collect();
            let totals = BatchTotals {
                sequences: members.len(),
                tokens: members
                    .iter()
                    .map(|&i| seqs[i].completion.len() as f64)
                    .sum(),
                max_len: ctx.max_new_tokens,
            };
            let mut acc = GradAccumulator::new();
            let mut loss_value = 0.0;
            for (u, micro) in micro_batches.iter().enumerate() {
                let mb: Vec<TrainSeq<'_>> = micro.iter().map(|&i| seqs[i]).collect();
                let refs = reference_logprobs.as_ref().map(|r| &r[m][u]);
                let want_stats = pass == 0;
                let out = micro_batch_loss(
                    policy, &mb, refs, on_policy, clip, cfg, totals, ctx, want_stats,
                )?;
                loss_value += scalar(&out.loss)?;
                if want_stats {
                    first.add(&out);
                }
                acc.add(policy.vars(), &out.loss.backward()?)?;
            }
            let outcome = updater.apply(loss_value, acc.finish())?;
            stats.updates += 1;
            stats.skipped_updates += usize::from(outcome.skipped);
            stats.loss += loss_value;
            stats.grad_norm += outcome.grad_norm;
            stats.lr = outcome.lr;
        }
    }
    let n = stats.updates.max(1) as f64;
    stats.loss /= n;
    stats.grad_norm /= n;
    let t = first.tokens.max(1.0);
    stats.clip_fraction = first.clipped / t;
    stats.entropy = first.entropy / t;
    stats.kl = reference_logprobs.as_ref().map(|_| first.kl / t);
    stats.tokens = first.tokens as usize;
    Ok(stats)
}

/// Sums over the first pass, for per-token means.
#[derive(Default)]
struct PassTotals {
    tokens: f64,
    clipped: f64,
    entropy: f64,
    kl: f64,
}

impl PassTotals {
    fn add(&mut self, o: &MicroOut) {
        self.tokens += o.tokens;
        self.clipped += o.clipped;
        self.entropy += o.entropy;
        self.kl += o.kl;
    }
}

struct MicroOut {
    /// Scalar: this micro-batch's share of the minibatch loss.
    loss: Tensor,
    tokens: f64,
    clipped: f64,
    entropy: f64,
    kl: f64,
}

/// Forward one micro-batch and build its loss: clipped surrogate + β·KL, aggregated against the
/// minibatch's totals.
#[allow(clippy::too_many_arguments)]
fn micro_batch_loss(
    policy: &Model,
    mb: &[TrainSeq<'_>],
    ref_logp: Option<&Tensor>,
    on_policy: bool,
    clip: Clip,
    cfg: &GrpoConfig,
    totals: BatchTotals,
    ctx: UpdateContext,
    want_stats: bool,
) -> Result<MicroOut> {
    let packed = pack(mb, policy, ctx.pad_id)?;
    let mask = packed.loss_mask(LossTokens::Completion, None)?; // (n, T−1)
    let (logp, entropy) = batch::token_logprobs(policy, &packed, ctx.temperature, want_stats)?;
    let old = if on_policy {
        logp.detach()
    } else {
        let lps: Vec<&[f32]> = mb.iter().map(|s| s.rollout_logprobs).collect();
        packed.place_completion_values(&lps)?
    };
    let adv: Vec<f32> = mb.iter().map(|s| s.advantage).collect();
    let adv = Tensor::from_vec(adv, mb.len(), policy.device())?;
    let pl = algo::policy_loss(&logp, &old, &adv, clip)?;
    let mut per_token = pl.per_token;
    let mut kl_sum = 0.0;
    if let Some(r) = ref_logp {
        let kl = algo::kl_penalty(&logp, r, cfg.kl_estimator)?;
        if want_stats {
            kl_sum = sum_masked(&kl, &mask)?;
        }
        per_token = (per_token + (kl * cfg.beta as f64)?)?;
    }
    let loss = algo::aggregate(&per_token, &mask, cfg.aggregation, totals)?;
    let (tokens, clipped, ent) = if want_stats {
        let ent = match &entropy {
            Some(e) => sum_masked(e, &mask)?,
            None => 0.0,
        };
        (
            sum_masked(&mask, &mask)?,
            sum_masked(&pl.clipped, &mask)?,
            ent,
        )
    } else {
        (0.0, 0.0, 0.0)
    };
    Ok(MicroOut {
        loss,
        tokens,
        clipped,
        entropy: ent,
        kl: kl_sum,
    })
}

fn sum_masked(x: &Tensor, mask: &Tensor) -> Result<f64> {
    scalar(&(x.detach() * mask)?.sum_all()?)
}

fn pack(mb: &[TrainSeq<'_>], model: &Model, pad_id: u32) -> Result<Packed> {
    let refs: Vec<SeqRef<'_>> = mb
        .iter()
        .map(|s| SeqRef {
            prompt: s.prompt,
            completion: s.completion,
        })
        .collect();
    Packed::new(&refs, pad_id, model.device())
}

/// Reference logprobs per (minibatch, micro-batch), no gradient: (n, T−1) each.
fn reference_logprobs(
    reference: &Model,
    seqs: &[TrainSeq<'_>],
    plan: &[Vec<Vec<usize>>],
    ctx: UpdateContext,
) -> Result<Vec<Vec<Tensor>>> {
    let frozen = reference.detached();
    plan.iter()
        .map(|micro_batches| {
            micro_batches
                .iter()
                .map(|micro| {
                    let mb: Vec<TrainSeq<'_>> = micro.iter().map(|&i| seqs[i]).collect();
                    let packed = pack(&mb, &frozen, ctx.pad_id)?;
                    let (lp, _) = batch::token_logprobs(&frozen, &packed, ctx.temperature, false)?;
                    Ok(lp.detach())
                })
                .collect()
        })
        .collect()
}

/// Splits sequence indices into `minibatches` contiguous parts of near-equal size, and each part
/// into micro-batches of at most `micro` sequences of similar length (sorted, to waste little
/// padding; the aggregation is exact whatever the grouping).
fn plan_batches(seqs: &[TrainSeq<'_>], minibatches: usize, micro: usize) -> Vec<Vec<Vec<usize>>> {
    let n = seqs.len();
    let parts = minibatches.min(n).max(1);
    (0..parts)
        .map(|p| {
            let (lo, hi) = (p * n / parts, (p + 1) * n / parts);
            let mut idx: Vec<usize> = (lo..hi).collect();
            idx.sort_by_key(|&i| (seqs[i].prompt.len() + seqs[i].completion.len(), i));
            idx.chunks(micro.max(1)).map(<[usize]>::to_vec).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_covers_every_sequence_once() {
        let p: Vec<Vec<u32>> = (0..7).map(|i| vec![1; 1 + i % 3]).collect();
        let seqs: Vec<TrainSeq<'_>> = p
            .iter()
            .map(|c| TrainSeq {
                prompt: &[1],
                completion: c,
                rollout_logprobs: &[],
                advantage: 0.0,
            })
            .collect();
        let plan = plan_batches(&seqs, 2, 2);
        assert_eq!(plan.len(), 2);
        let mut all: Vec<usize> = plan.iter().flatten().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..7).collect::<Vec<_>>());
        assert!(plan.iter().flatten().all(|m| m.len() <= 2));
    }
}
