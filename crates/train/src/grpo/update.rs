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

use std::time::Instant;

use aha_model::Model;
use candle_core::Tensor;

use crate::algo::{self, BatchTotals, Clip};
use crate::batch::{self, LossTokens, Packed, SeqRef};
use crate::collective::{sum_gradients, Collective, Single};
use crate::config::GrpoConfig;
use crate::optim::{grads::scalar, GradAccumulator, Updater};
use crate::worker::on_rayon_worker;
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
    /// Seconds spent summing gradients and loss values over ranks.
    pub allreduce_s: f64,
}

/// Settings of the update that come from outside `[grpo]`.
#[derive(Debug, Clone, Copy)]
pub struct UpdateContext {
    pub temperature: f64,
    pub max_new_tokens: usize,
    pub pad_id: u32,
}

/// Where this rank's sequences sit in the step's global sequence list: a data-parallel rank
/// trains only its share, but minibatches and loss normalisers are those of the whole list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqShard {
    /// The global index of each local sequence, increasing.
    pub global_index: Vec<usize>,
    /// Sequences in the whole step, over every rank.
    pub total: usize,
}

impl SeqShard {
    /// One process holding all `n` sequences.
    pub fn whole(n: usize) -> Self {
        Self {
            global_index: (0..n).collect(),
            total: n,
        }
    }
}

/// This rank's share of a step: its sequences, where they sit in the step's global list, and the
/// link to the other ranks.
#[derive(Clone, Copy)]
pub struct RankShare<'a, 's> {
    pub seqs: &'a [TrainSeq<'s>],
    pub shard: &'a SeqShard,
    pub comm: &'a dyn Collective,
}

/// The update of a single process holding every sequence.
pub fn update(
    policy: &Model,
    reference: Option<&Model>,
    updater: &mut Updater,
    seqs: &[TrainSeq<'_>],
    cfg: &GrpoConfig,
    ctx: UpdateContext,
) -> Result<UpdateStats> {
    let whole = SeqShard::whole(seqs.len());
    let share = RankShare {
        seqs,
        shard: &whole,
        comm: &Single,
    };
    update_shard(policy, reference, updater, share, cfg, ctx)
}

/// The update of one data-parallel rank holding `share`: each minibatch's loss is normalised by
/// its global totals, and its gradients and loss value are summed over ranks before the
/// (identical) optimizer update on every rank.
pub fn update_shard(
    policy: &Model,
    reference: Option<&Model>,
    updater: &mut Updater,
    share: RankShare<'_, '_>,
    cfg: &GrpoConfig,
    ctx: UpdateContext,
) -> Result<UpdateStats> {
    let RankShare { seqs, shard, comm } = share;
    let mut stats = UpdateStats::default();
    if shard.total == 0 {
        return Ok(stats);
    }
    if shard.global_index.len() != seqs.len() {
        return Err(crate::Error::Shape(format!(
            "update: {} sequences but {} global indices",
            seqs.len(),
            shard.global_index.len()
        )));
    }
    let settings = LossSettings::new(cfg, ctx);
    let plan = plan_batches(seqs, shard, cfg.minibatches, cfg.micro_batch_size);
    let all_totals = minibatch_totals(seqs, &plan, ctx.max_new_tokens, comm)?;
    let reference_logprobs = match (reference, cfg.beta > 0.0) {
        (Some(r), true) => Some(on_rayon_worker(|| reference_logprobs(r, seqs, &plan, ctx))?),
        _ => None,
    };
    let mut first = PassTotals::default();
    for pass in 0..cfg.passes {
        for (m, micro_batches) in plan.iter().enumerate() {
            let minibatch = Minibatch {
                micro_batches,
                reference_logprobs: reference_logprobs.as_ref().map(|r| r[m].as_slice()),
                totals: all_totals[m],
                stats: match pass {
                    0 => Stats::Measure,
                    _ => Stats::Skip,
                },
            };
            let (loss_value, acc) = on_rayon_worker(|| {
                minibatch_gradients(policy, seqs, &minibatch, &settings, &mut first)
            })?;
            optimizer_step(policy, updater, comm, loss_value, acc, &mut stats)?;
        }
    }
    first.sum_over(comm)?;
    stats.finish(&first, reference_logprobs.is_some());
    Ok(stats)
}

/// One minibatch of the plan: its micro-batches (local indices), their reference logprobs when
/// β > 0, and its totals over every rank.
struct Minibatch<'a> {
    micro_batches: &'a [Vec<usize>],
    reference_logprobs: Option<&'a [Tensor]>,
    totals: BatchTotals,
    stats: Stats,
}

/// Forward and backward over a minibatch's micro-batches: this rank's loss value and summed
/// gradients. Adds the micro-batches' statistics to `first` when the minibatch measures them.
fn minibatch_gradients(
    policy: &Model,
    seqs: &[TrainSeq<'_>],
    minibatch: &Minibatch<'_>,
    settings: &LossSettings<'_>,
    first: &mut PassTotals,
) -> Result<(f64, GradAccumulator)> {
    let mut acc = GradAccumulator::new();
    let mut loss_value = 0.0;
    for (u, micro) in minibatch.micro_batches.iter().enumerate() {
        let mb: Vec<TrainSeq<'_>> = micro.iter().map(|&i| seqs[i]).collect();
        let micro = MicroBatch {
            seqs: &mb,
            reference_logprobs: minibatch.reference_logprobs.map(|r| &r[u]),
            totals: minibatch.totals,
            stats: minibatch.stats,
        };
        let out = micro_batch_loss(policy, &micro, settings)?;
        loss_value += scalar(&out.loss)?;
        if micro.stats == Stats::Measure {
            first.add(&out);
        }
        acc.add(policy.vars(), &aha_model::backward(&out.loss)?)?;
    }
    Ok((loss_value, acc))
}

/// Sums a minibatch's loss value and gradients over ranks and takes the optimizer update,
/// counting it in `stats`.
fn optimizer_step(
    policy: &Model,
    updater: &mut Updater,
    comm: &dyn Collective,
    loss_value: f64,
    acc: GradAccumulator,
    stats: &mut UpdateStats,
) -> Result<()> {
    let t = Instant::now();
    let mut loss_sum = [loss_value];
    comm.sum_f64(&mut loss_sum)?;
    let loss_value = loss_sum[0];
    let grads = sum_gradients(comm, policy.vars(), acc.finish())?;
    stats.allreduce_s += t.elapsed().as_secs_f64();
    let outcome = updater.apply(loss_value, grads)?;
    stats.updates += 1;
    stats.skipped_updates += usize::from(outcome.skipped);
    stats.loss += loss_value;
    stats.grad_norm += outcome.grad_norm;
    stats.lr = outcome.lr;
    Ok(())
}

impl UpdateStats {
    /// Turns sums into means: loss and gradient norm per update, the rest per token of the
    /// first pass (summed over ranks).
    fn finish(&mut self, first: &PassTotals, with_kl: bool) {
        let n = self.updates.max(1) as f64;
        self.loss /= n;
        self.grad_norm /= n;
        let t = first.tokens.max(1.0);
        self.clip_fraction = first.clipped / t;
        self.entropy = first.entropy / t;
        self.kl = with_kl.then(|| first.kl / t);
        self.tokens = first.tokens as usize;
    }
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

    fn sum_over(&mut self, comm: &dyn Collective) -> Result<()> {
        let mut v = [self.tokens, self.clipped, self.entropy, self.kl];
        comm.sum_f64(&mut v)?;
        [self.tokens, self.clipped, self.entropy, self.kl] = v;
        Ok(())
    }
}

/// Each minibatch's loss denominators over every rank: its sequences and completion tokens.
fn minibatch_totals(
    seqs: &[TrainSeq<'_>],
    plan: &[Vec<Vec<usize>>],
    max_len: usize,
    comm: &dyn Collective,
) -> Result<Vec<BatchTotals>> {
    let mut counts: Vec<f64> = plan
        .iter()
        .flat_map(|micro_batches| {
            let members = micro_batches.iter().flatten();
            let tokens: f64 = members
                .clone()
                .map(|&i| seqs[i].completion.len() as f64)
                .sum();
            [members.count() as f64, tokens]
        })
        .collect();
    comm.sum_f64(&mut counts)?;
    Ok(counts
        .chunks(2)
        .map(|c| BatchTotals {
            sequences: c[0] as usize,
            tokens: c[1],
            max_len,
        })
        .collect())
}

struct MicroOut {
    /// Scalar: this micro-batch's share of the minibatch loss.
    loss: Tensor,
    tokens: f64,
    clipped: f64,
    entropy: f64,
    kl: f64,
}

/// π_old of the importance ratio (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OldPolicy {
    /// One update per step: the current policy, detached.
    Current,
    /// Several updates per step: the rollout's own logprobs.
    Rollout,
}

/// Whether a micro-batch measures entropy, KL and clipping (the first pass does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stats {
    Measure,
    Skip,
}

/// What every micro-batch of one update shares.
struct LossSettings<'a> {
    cfg: &'a GrpoConfig,
    ctx: UpdateContext,
    clip: Clip,
    old_policy: OldPolicy,
}

impl<'a> LossSettings<'a> {
    fn new(cfg: &'a GrpoConfig, ctx: UpdateContext) -> Self {
        LossSettings {
            cfg,
            ctx,
            clip: Clip {
                low: cfg.clip_low,
                high: cfg.clip_high,
            },
            old_policy: match cfg.passes == 1 && cfg.minibatches == 1 {
                true => OldPolicy::Current,
                false => OldPolicy::Rollout,
            },
        }
    }
}

/// One micro-batch: its sequences, their reference logprobs (n, T−1) when β > 0, and the totals
/// of the minibatch it belongs to.
struct MicroBatch<'a> {
    seqs: &'a [TrainSeq<'a>],
    reference_logprobs: Option<&'a Tensor>,
    totals: BatchTotals,
    stats: Stats,
}

/// Forward one micro-batch and build its loss: clipped surrogate + β·KL, aggregated against the
/// minibatch's totals.
fn micro_batch_loss(policy: &Model, mb: &MicroBatch<'_>, s: &LossSettings<'_>) -> Result<MicroOut> {
    let (cfg, ctx) = (s.cfg, s.ctx);
    let want_stats = mb.stats == Stats::Measure;
    let packed = pack(mb.seqs, policy, ctx.pad_id)?;
    let mask = packed.loss_mask(LossTokens::Completion, None)?; // (n, T−1)
    let (logp, entropy) = batch::token_logprobs(policy, &packed, ctx.temperature, want_stats)?;
    let old = match s.old_policy {
        OldPolicy::Current => logp.detach(),
        OldPolicy::Rollout => {
            let lps: Vec<&[f32]> = mb.seqs.iter().map(|s| s.rollout_logprobs).collect();
            packed.place_completion_values(&lps)?
        }
    };
    let adv: Vec<f32> = mb.seqs.iter().map(|s| s.advantage).collect();
    let adv = Tensor::from_vec(adv, mb.seqs.len(), policy.device())?;
    let pl = algo::policy_loss(&logp, &old, &adv, s.clip)?;
    let mut per_token = pl.per_token;
    let mut kl_sum = 0.0;
    if let Some(r) = mb.reference_logprobs {
        let kl = algo::kl_penalty(&logp, r, cfg.kl_estimator)?;
        if want_stats {
            kl_sum = sum_masked(&kl, &mask)?;
        }
        per_token = (per_token + (kl * cfg.beta as f64)?)?;
    }
    let loss = algo::aggregate(&per_token, &mask, cfg.aggregation, mb.totals)?;
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

/// Splits the global sequence list into `minibatches` contiguous parts of near-equal size and
/// keeps, of each part, this rank's sequences (local indices), split into micro-batches of at
/// most `micro` sequences of similar length (sorted, to waste little padding; the aggregation
/// is exact whatever the grouping). Every rank gets the same number of parts, some maybe empty.
fn plan_batches(
    seqs: &[TrainSeq<'_>],
    shard: &SeqShard,
    minibatches: usize,
    micro: usize,
) -> Vec<Vec<Vec<usize>>> {
    let n = shard.total;
    let parts = minibatches.min(n).max(1);
    (0..parts)
        .map(|p| {
            let (lo, hi) = (p * n / parts, (p + 1) * n / parts);
            let mut idx: Vec<usize> = (shard.global_index.iter().enumerate())
                .filter(|(_, &g)| (lo..hi).contains(&g))
                .map(|(i, _)| i)
                .collect();
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
        let plan = plan_batches(&seqs, &SeqShard::whole(7), 2, 2);
        assert_eq!(plan.len(), 2);
        let mut all: Vec<usize> = plan.iter().flatten().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..7).collect::<Vec<_>>());
        assert!(plan.iter().flatten().all(|m| m.len() <= 2));
    }

    #[test]
    fn a_rank_plans_its_share_of_the_global_minibatches() {
        let c = [1u32];
        let seqs: Vec<TrainSeq<'_>> = (0..3)
            .map(|_| TrainSeq {
                prompt: &[1],
                completion: &c,
                rollout_logprobs: &[],
                advantage: 0.0,
            })
            .collect();
        // Global sequences 0..7 in minibatches [0, 3) and [3, 7); this rank holds 1, 3 and 5.
        let shard = SeqShard {
            global_index: vec![1, 3, 5],
            total: 7,
        };
        let plan = plan_batches(&seqs, &shard, 2, 4);
        assert_eq!(plan, [vec![vec![0]], vec![vec![1, 2]]]);
        // A rank with nothing still takes part in every minibatch (with empty shares).
        let none = SeqShard {
            global_index: vec![],
            total: 7,
        };
        assert_eq!(plan_batches(&[], &none, 2, 4).len(), 2);
    }
}
