//! Collecting one step's rollouts: prompts from the stream, G completions each from the engine,
//! verifier rewards, reward shaping for overlong completions, and DAPO's dynamic sampling (drop
//! groups whose shaped rewards are all equal, refill from fresh prompts for a bounded number of
//! extra rounds).
//!
//! Randomness: the engine keys each completion's stream by `(run seed, prompt's stream position,
//! sample index)`; positions only grow, so a completion never depends on batch composition or
//! on how many refill rounds came before it, and a resumed run draws the same ones.

use std::ops::Range;
use std::time::Instant;

use aha_model::tokenizer::Tokenizer;
use aha_model::Model;
use aha_verify::Reward;

use crate::algo::{self, overlong_effect};
use crate::collective::{shard, Collective};
use crate::config::{GroupFilter, TrainConfig};
use crate::data::{Item, PromptStream};
use crate::engine::{self, FinishReason, Group, SamplingParams, StopMatcher};
use crate::reward::{score_groups, CompletionScore, VerifierText};
use crate::{Error, Result};

/// One prompt's group with everything the step needs about it.
#[derive(Debug, Clone)]
pub struct ScoredGroup {
    pub item: Item,
    pub group: Group,
    pub scores: Vec<CompletionScore>,
    /// Reward after overlong shaping; `None` when no verifier could judge.
    pub shaped: Vec<Option<f32>>,
    /// Whether each completion's tokens enter the loss (overlong masking).
    pub in_loss: Vec<bool>,
}

/// A step's rollouts: every generated group (for metrics) and which of them train. On a
/// data-parallel rank, `groups` and `trained` are this rank's share; the counts and sequence
/// offsets place that share in the whole step.
#[derive(Debug, Clone, Default)]
pub struct Rollouts {
    pub groups: Vec<ScoredGroup>,
    /// Indices into `groups` of the groups the update uses, at most B over all ranks.
    pub trained: Vec<usize>,
    /// For each of `trained`: the global index of its first loss sequence, where the step's
    /// loss sequences are those of every rank's trained groups in prompt-stream order.
    pub trained_offsets: Vec<usize>,
    /// Loss sequences in the whole step.
    pub total_seqs: usize,
    /// Groups generated and trained in the whole step.
    pub total_generated: usize,
    pub total_trained: usize,
    pub rollout_s: f64,
    pub reward_s: f64,
}

impl Rollouts {
    pub fn trained_groups(&self) -> impl Iterator<Item = &ScoredGroup> {
        self.trained.iter().map(|&i| &self.groups[i])
    }
}

/// What a rollout needs besides the stream.
pub struct RolloutContext<'a> {
    pub cfg: &'a TrainConfig,
    pub policy: &'a Model,
    pub tokenizer: &'a Tokenizer,
    pub reward: &'a Reward,
    pub sampling: &'a SamplingParams,
    /// The ranks sharing the step: each generates a contiguous share of every round's prompts.
    pub comm: &'a dyn Collective,
}

/// Collects one step's rollouts: rounds of generation and scoring until B groups are kept (or
/// the refill rounds run out).
pub fn collect_rollouts(ctx: &RolloutContext<'_>, stream: &mut PromptStream) -> Result<Rollouts> {
    let b = ctx.cfg.rollout.prompts_per_step;
    let stop = stop_matcher(ctx)?;
    let mut out = Rollouts::default();
    let max_rounds = match ctx.cfg.grpo.filter {
        GroupFilter::KeepAll => 1,
        GroupFilter::DropUniform => 1 + ctx.cfg.grpo.max_refill_rounds,
    };
    for _round in 0..max_rounds {
        let round = generate_round(ctx, stream, b - out.total_trained, stop.as_ref(), &mut out)?;
        keep_groups(ctx, round, &mut out)?;
        if out.total_trained >= b {
            break;
        }
    }
    Ok(out)
}

fn stop_matcher<'a>(ctx: &RolloutContext<'a>) -> Result<Option<StopMatcher<'a>>> {
    if ctx.sampling.stop_strings.is_empty() {
        return Ok(None);
    }
    StopMatcher::with_decoder(&ctx.sampling.stop_strings, |ids| {
        ctx.tokenizer.decode(ids, false).map_err(|e| e.to_string())
    })
    .map(Some)
    .map_err(|e| Error::config("rollout.stop_strings", e.to_string()))
}

/// This rank's share of one round: its prompts, their groups and scores, and where the share
/// sits among the round's `len` prompts.
struct RoundShare {
    items: Vec<Item>,
    groups: Vec<Group>,
    /// (share·G), group by group.
    scores: Vec<CompletionScore>,
    mine: Range<usize>,
    len: usize,
}

/// Draws a round of `need` prompts (every rank draws the same global batch), generates and
/// scores this rank's contiguous slice of it, and charges the time to `out`.
fn generate_round(
    ctx: &RolloutContext<'_>,
    stream: &mut PromptStream,
    need: usize,
    stop: Option<&StopMatcher<'_>>,
    out: &mut Rollouts,
) -> Result<RoundShare> {
    let batch = stream.next_batch(need);
    let first = batch.first().map_or(0, |(k, _)| *k as usize);
    let len = batch.len();
    let mine = shard(len, ctx.comm.rank(), ctx.comm.size());
    let items: Vec<Item> = batch
        .into_iter()
        .skip(mine.start)
        .take(mine.len())
        .map(|(_, item)| item)
        .collect();
    let prompts = items
        .iter()
        .map(|it| ctx.cfg.data.template.encode(it, ctx.tokenizer))
        .collect::<Result<Vec<_>>>()?;

    let t = Instant::now();
    let offset = first + mine.start;
    let g = ctx.cfg.rollout.group_size;
    let groups = engine::generate_groups_from(ctx.policy, &prompts, offset, g, ctx.sampling, stop)?; // B/N groups of G
    out.rollout_s += t.elapsed().as_secs_f64();

    let t = Instant::now();
    let groups: Vec<Group> = groups
        .into_iter()
        .map(|mut gr| {
            gr.prompt_index -= offset;
            gr
        })
        .collect();
    let text = VerifierText::new(ctx.tokenizer, ctx.policy.config());
    let scores = score_groups(ctx.reward, &text, &items, &groups)?; // (B/N·G)
    out.reward_s += t.elapsed().as_secs_f64();
    Ok(RoundShare {
        items,
        groups,
        scores,
        mine,
        len,
    })
}

/// Shapes the round's rewards and keeps groups in prompt-stream order until B are kept (all of
/// them, or only informative ones under DAPO's filter). Every rank makes the same decisions.
fn keep_groups(ctx: &RolloutContext<'_>, round: RoundShare, out: &mut Rollouts) -> Result<()> {
    let (b, g) = (ctx.cfg.rollout.prompts_per_step, ctx.cfg.rollout.group_size);
    let mine = round.mine;
    // Per global slot of the round: [informative, loss sequences], summed over ranks so every
    // rank makes the same keep decisions in prompt-stream order.
    let mut slots = vec![0.0f64; 2 * round.len];
    let mut scores = round.scores.into_iter();
    let base = out.groups.len();
    for (j, (item, group)) in round.items.into_iter().zip(round.groups).enumerate() {
        let s: Vec<CompletionScore> = scores.by_ref().take(g).collect();
        let scored = shape(ctx.cfg, item, group, s);
        let informative = algo::informative_groups(&scored.shaped, g)[0];
        slots[2 * (mine.start + j)] = f64::from(u8::from(informative));
        slots[2 * (mine.start + j) + 1] = scored.in_loss.iter().filter(|&&k| k).count() as f64;
        out.groups.push(scored);
    }
    ctx.comm.sum_f64(&mut slots)?;
    for (i, slot) in slots.chunks(2).enumerate() {
        let keep = match ctx.cfg.grpo.filter {
            GroupFilter::KeepAll => true,
            GroupFilter::DropUniform => slot[0] > 0.5,
        };
        if keep && out.total_trained < b {
            out.total_trained += 1;
            if mine.contains(&i) {
                out.trained.push(base + i - mine.start);
                out.trained_offsets.push(out.total_seqs);
            }
            out.total_seqs += slot[1] as usize;
        }
    }
    out.total_generated += round.len;
    Ok(())
}

/// Applies the overlong policy to one group's rewards.
fn shape(cfg: &TrainConfig, item: Item, group: Group, scores: Vec<CompletionScore>) -> ScoredGroup {
    let max_len = cfg.rollout.max_new_tokens;
    let (shaped, in_loss) = group
        .completions
        .iter()
        .zip(&scores)
        .map(|(c, s)| {
            let truncated = c.finish_reason == FinishReason::Length;
            let fx = overlong_effect(cfg.grpo.overlong, c.ids.len(), truncated, max_len);
            (
                s.reward.map(|r| r + fx.reward_delta),
                fx.keep && s.reward.is_some(),
            )
        })
        .unzip();
    ScoredGroup {
        item,
        group,
        scores,
        shaped,
        in_loss,
    }
}
