//! A GRPO step's numbers for [`StepMetrics`](crate::metrics::StepMetrics): counts over the
//! step's completions on this rank, summed over ranks, and the FLOPs the step spent. The
//! metrics struct itself is filled by the trainer.

use aha_model::ModelConfig;

use super::rollout::Rollouts;
use super::update::TrainSeq;
use crate::collective::Collective;
use crate::engine::FinishReason;
use crate::metrics::{forward_flops, Sample};
use crate::Result;

/// Counts over a step's completions (as f64, the collectives' type).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Counts {
    pub n: f64,
    /// Completions the verifier could judge, and those it judged correct.
    pub judged_correct: f64,
    pub correct: f64,
    pub formatted: f64,
    pub truncated: f64,
    pub len_sum: f64,
    /// Completions with a reward.
    pub judged: f64,
    pub reward_sum: f64,
}

/// This rank's completions: their counts, rewards and longest length.
pub(super) struct CompletionTally {
    counts: Counts,
    rewards: Vec<f64>,
    len_max: usize,
}

impl CompletionTally {
    pub fn of(r: &Rollouts) -> Self {
        let mut c = Counts::default();
        let mut rewards = Vec::new();
        let mut len_max = 0;
        let completions = r
            .groups
            .iter()
            .flat_map(|g| g.group.completions.iter().zip(&g.scores));
        for (completion, score) in completions {
            c.n += 1.0;
            rewards.extend(score.reward.map(f64::from));
            if let Some(ok) = score.correct {
                c.judged_correct += 1.0;
                c.correct += f64::from(u8::from(ok));
            }
            c.formatted += f64::from(u8::from(score.well_formed));
            c.truncated += f64::from(u8::from(completion.finish_reason == FinishReason::Length));
            c.len_sum += completion.ids.len() as f64;
            len_max = len_max.max(completion.ids.len());
        }
        c.judged = rewards.len() as f64;
        c.reward_sum = rewards.iter().sum();
        Self {
            counts: c,
            rewards,
            len_max,
        }
    }
}

/// The whole step's numbers, over every rank.
pub(super) struct StepTotals {
    pub completions: Counts,
    pub reward_mean: f64,
    pub reward_std: f64,
    pub len_max: f64,
    pub flops: f64,
    /// The slowest rank's step time.
    pub step_s: f64,
}

impl StepTotals {
    /// Sums over ranks, then the reward spread about the global mean (two passes, as
    /// `mean_std`), then the maxima. Every rank makes the same collective calls in this order.
    pub fn over_ranks(
        comm: &dyn Collective,
        local: &CompletionTally,
        flops: f64,
        step_s: f64,
    ) -> Result<Self> {
        let c = local.counts;
        let mut sums = [
            c.n,
            c.judged_correct,
            c.correct,
            c.formatted,
            c.truncated,
            c.len_sum,
            c.judged,
            c.reward_sum,
            flops,
        ];
        comm.sum_f64(&mut sums)?;
        let [n, judged_correct, correct, formatted, truncated, len_sum, judged, reward_sum, flops] =
            sums;
        let completions = Counts {
            n,
            judged_correct,
            correct,
            formatted,
            truncated,
            len_sum,
            judged,
            reward_sum,
        };
        let reward_mean = match judged > 0.0 {
            true => reward_sum / judged,
            false => 0.0,
        };
        let mut spread = [local
            .rewards
            .iter()
            .map(|x| (x - reward_mean).powi(2))
            .sum::<f64>()];
        comm.sum_f64(&mut spread)?;
        let reward_std = match judged > 0.0 {
            true => (spread[0] / judged).sqrt(),
            false => 0.0,
        };
        let mut maxima = [local.len_max as f64, step_s];
        comm.max_f64(&mut maxima)?;
        let [len_max, step_s] = maxima;
        Ok(Self {
            completions,
            reward_mean,
            reward_std,
            len_max,
            flops,
            step_s,
        })
    }
}

/// FLOPs of this rank's step: every prompt's prefill and completion's decoding, the training
/// forward and backward (3× a forward) of each pass, and the reference's forward when there is
/// one.
pub(super) fn step_flops(
    cfg: &ModelConfig,
    r: &Rollouts,
    seqs: &[TrainSeq<'_>],
    passes: usize,
    has_reference: bool,
) -> f64 {
    let mut flops = 0.0;
    for g in &r.groups {
        let p = g.group.prompt_ids.len();
        flops += forward_flops(cfg, 0, p);
        flops += g
            .group
            .completions
            .iter()
            .map(|c| forward_flops(cfg, p, c.ids.len()))
            .sum::<f64>();
    }
    let trained: f64 = seqs
        .iter()
        .map(|s| forward_flops(cfg, 0, s.prompt.len() + s.completion.len()))
        .sum();
    let reference = if has_reference { trained } else { 0.0 };
    flops + 3.0 * trained * passes as f64 + reference
}

/// The first completion of the step's first `count` groups, for `samples.jsonl`.
pub(super) fn step_samples(r: &Rollouts, step: usize, count: usize) -> Vec<Sample> {
    r.groups
        .iter()
        .take(count)
        .map(|g| Sample {
            step,
            prompt: g.item.problem.clone(),
            completion: g.scores[0].text.clone(),
            answer: g.item.answer.clone(),
            reward: g.scores[0].reward,
            correct: g.scores[0].correct,
            tokens: g.group.completions[0].ids.len(),
            truncated: g.group.completions[0].finish_reason == FinishReason::Length,
        })
        .collect()
}
