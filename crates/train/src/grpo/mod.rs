//! The GRPO trainer: [`GrpoTrainer::step`] is the R1 recipe in ten lines — prompts → rollouts →
//! rewards → group advantages → policy update → metrics.
//!
//! The trainer owns the policy, the optional frozen reference (only when β > 0: β = 0 costs no
//! memory and no forward), the optimizer, the prompt stream and the reward. It writes no files;
//! [`checkpoint`] saves and restores its state, `run` drives it with a run directory.

pub mod checkpoint;
mod report;
pub mod rollout;
pub mod update;

use std::sync::Arc;
use std::time::Instant;

use aha_model::load::GenerationConfig;
use aha_model::tokenizer::Tokenizer;
use aha_model::Model;
use aha_verify::Reward;
use serde::{Deserialize, Serialize};

use crate::algo;
use crate::collective::{self, check_replicas, Collective};
use crate::config::TrainConfig;
use crate::data::{Dataset, PromptStream};
use crate::engine::SamplingParams;
use crate::metrics::{Sample, StepMetrics};
use crate::optim::{UpdateCounters, Updater};
use crate::Result;
use report::{step_flops, step_samples, CompletionTally, StepTotals};
use rollout::{collect_rollouts, RolloutContext, Rollouts};
use update::{RankShare, SeqShard, TrainSeq, UpdateContext, UpdateStats};

/// Steps between checks that data-parallel ranks still hold identical weights (and after the
/// first step, where a mismatched start shows).
const REPLICA_CHECK_EVERY: usize = 25;

/// Everything besides weights and optimizer moments that a resumed run needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Steps done.
    pub step: usize,
    /// Items of the prompt stream consumed.
    pub data_position: u64,
    pub counters: UpdateCounters,
    /// Cumulative FLOPs and step seconds, for the cost columns.
    pub flops: f64,
    pub device_seconds: f64,
}

/// What one step produced.
#[derive(Debug, Clone)]
pub struct StepOutput {
    pub metrics: StepMetrics,
    pub samples: Vec<Sample>,
}

pub struct GrpoTrainer {
    cfg: TrainConfig,
    policy: Model,
    /// Frozen reference for the KL term; `None` when β = 0.
    reference: Option<Model>,
    updater: Updater,
    tokenizer: Tokenizer,
    reward: Reward,
    stream: PromptStream,
    sampling: SamplingParams,
    pad_id: u32,
    state: TrainerState,
    /// Written into checkpoints as generation_config.json; `None` derives it from the config.
    generation: Option<GenerationConfig>,
    /// The ranks of a data-parallel job (one process by default).
    comm: Arc<dyn Collective>,
}

impl GrpoTrainer {
    /// `policy` must be trainable. Validates `cfg` again (it may have been built in code).
    pub fn new(
        cfg: TrainConfig,
        policy: Model,
        tokenizer: Tokenizer,
        dataset: Dataset,
    ) -> Result<Self> {
        cfg.validate()?;
        if policy.vars().is_empty() {
            return Err(crate::Error::config(
                "model",
                "the policy has no trainable parameters (load it with trainable = true)",
            ));
        }
        let reward = cfg.reward()?;
        let updater = cfg.optim.updater(policy.vars(), cfg.total_updates())?;
        let reference = match cfg.grpo.beta > 0.0 {
            true => Some(policy.frozen_copy()?),
            false => None,
        };
        let r = &cfg.rollout;
        let mut eos = tokenizer.eos_token_ids();
        eos.extend(policy.config().eos_token_ids.iter().copied());
        eos.sort_unstable();
        eos.dedup();
        if r.ignore_eos {
            eos.clear();
        }
        let sampling = SamplingParams {
            temperature: r.temperature,
            top_p: r.top_p,
            top_k: r.top_k,
            max_new_tokens: r.max_new_tokens,
            stop_strings: r.stop_strings.clone(),
            eos_token_ids: eos,
            seed: cfg.seed,
            max_cache_bytes: r.max_cache_bytes,
        };
        let pad_id = policy
            .config()
            .pad_token_id
            .or(tokenizer.pad_token_id())
            .unwrap_or(0);
        let stream = PromptStream::new(dataset, cfg.seed, 0);
        Ok(Self {
            cfg,
            policy,
            reference,
            updater,
            tokenizer,
            reward,
            stream,
            sampling,
            pad_id,
            state: TrainerState::default(),
            generation: None,
            comm: collective::single(),
        })
    }

    /// Makes this trainer one rank of a data-parallel job: it generates and trains its share
    /// of each step, and the update and metrics are those of the whole step.
    pub fn with_collective(mut self, comm: Arc<dyn Collective>) -> Self {
        self.comm = comm;
        self
    }

    pub fn collective(&self) -> &dyn Collective {
        &*self.comm
    }

    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }
    pub fn policy(&self) -> &Model {
        &self.policy
    }
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
    pub fn state(&self) -> &TrainerState {
        &self.state
    }

    /// The generation_config.json checkpoints carry (the source checkpoint's, so that every
    /// end-of-sequence id it lists survives training).
    pub fn set_generation_config(&mut self, generation: Option<GenerationConfig>) {
        self.generation = generation;
    }

    /// One GRPO step.
    pub fn step(&mut self) -> Result<StepOutput> {
        let started = Instant::now();
        let rollouts = self.rollouts()?; // B prompts → B groups of G, scored; uniform ones refilled
        let rewards = shaped_rewards(&rollouts); // (B·G) after overlong shaping
        let advantages = self.advantages(&rewards)?; // (B·G) group-relative
        let (seqs, shard) = training_sequences(&rollouts, &advantages); // the loss's completions
        let (stats, update_s) = self.update(&seqs, &shard)?; // μ passes over minibatches
        self.state.step += 1;
        self.maybe_reset_reference()?;
        self.check_replicas()?;
        let step_s = started.elapsed().as_secs_f64();
        self.report(&rollouts, &seqs, &stats, update_s, step_s)
    }

    /// Errors (on every rank) when data-parallel ranks no longer hold the same weights.
    fn check_replicas(&self) -> Result<()> {
        let step = self.state.step;
        if step == 1 || step.is_multiple_of(REPLICA_CHECK_EVERY) {
            let when = format!("after step {step}");
            check_replicas(&*self.comm, self.policy.vars(), &when)?;
        }
        Ok(())
    }

    fn advantages(&self, rewards: &[Option<f32>]) -> Result<Vec<f32>> {
        let (g, grpo) = (self.cfg.rollout.group_size, &self.cfg.grpo);
        algo::group_advantages(rewards, g, grpo.advantage, grpo.adv_eps)
    }

    /// The policy update and its seconds.
    fn update(&mut self, seqs: &[TrainSeq<'_>], shard: &SeqShard) -> Result<(UpdateStats, f64)> {
        let (ctx, started) = (self.update_context(), Instant::now());
        let reference = self.reference.as_ref();
        let share = RankShare {
            seqs,
            shard,
            comm: &*self.comm,
        };
        let stats = update::update_shard(
            &self.policy,
            reference,
            &mut self.updater,
            share,
            &self.cfg.grpo,
            ctx,
        )?;
        Ok((stats, started.elapsed().as_secs_f64()))
    }

    fn rollouts(&mut self) -> Result<Rollouts> {
        let ctx = RolloutContext {
            cfg: &self.cfg,
            policy: &self.policy,
            tokenizer: &self.tokenizer,
            reward: &self.reward,
            sampling: &self.sampling,
            comm: &*self.comm,
        };
        let out = collect_rollouts(&ctx, &mut self.stream)?;
        self.state.data_position = self.stream.position();
        Ok(out)
    }

    fn update_context(&self) -> UpdateContext {
        UpdateContext {
            temperature: self.cfg.rollout.temperature as f64,
            max_new_tokens: self.cfg.rollout.max_new_tokens,
            pad_id: self.pad_id,
        }
    }

    /// R1 resets the reference to the current policy every N steps (400 in R1).
    fn maybe_reset_reference(&mut self) -> Result<()> {
        let every = self.cfg.grpo.reference_reset_every;
        if self.reference.is_some() && every > 0 && self.state.step.is_multiple_of(every) {
            self.reference = Some(self.policy.frozen_copy()?);
        }
        Ok(())
    }

    /// Metrics and samples of the step just done (the whole step's, summed over ranks); also
    /// advances the cost counters. Samples are rank 0's first groups.
    fn report(
        &mut self,
        r: &Rollouts,
        seqs: &[TrainSeq<'_>],
        stats: &UpdateStats,
        update_s: f64,
        step_s: f64,
    ) -> Result<StepOutput> {
        let local = CompletionTally::of(r);
        let flops = step_flops(
            self.policy.config(),
            r,
            seqs,
            self.cfg.grpo.passes,
            self.reference.is_some(),
        );
        let step = StepTotals::over_ranks(&*self.comm, &local, flops, step_s)?;

        self.state.flops += step.flops;
        // The step held every rank's device for as long as the slowest rank took.
        self.state.device_seconds += step.step_s * self.comm.size() as f64;
        self.state.counters = self.updater.counters;
        let device_hours = self.state.device_seconds / 3600.0;

        let samples = step_samples(r, self.state.step, self.cfg.output.samples_per_step);
        let c = &step.completions;
        let share = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
        let metrics = StepMetrics {
            step: self.state.step,
            reward_mean: step.reward_mean,
            reward_std: step.reward_std,
            accuracy: share(c.correct, c.judged_correct),
            format_rate: share(c.formatted, c.n),
            completion_len_mean: share(c.len_sum, c.n),
            completion_len_max: step.len_max as usize,
            truncated_share: share(c.truncated, c.n),
            unjudged: (c.n - c.judged) as usize,
            groups_generated: r.total_generated,
            groups_trained: r.total_trained,
            loss: stats.loss,
            kl: stats.kl,
            clip_fraction: stats.clip_fraction,
            entropy: stats.entropy,
            grad_norm: stats.grad_norm,
            lr: stats.lr,
            skipped_updates: stats.skipped_updates,
            generated_tokens: c.len_sum as usize,
            tokens_per_s: (c.len_sum + stats.tokens as f64) / step.step_s.max(1e-9),
            rollout_s: r.rollout_s,
            reward_s: r.reward_s,
            update_s,
            allreduce_s: stats.allreduce_s,
            step_s: step.step_s,
            flops: self.state.flops,
            device_hours,
            cost_usd: device_hours * self.cfg.output.price_per_device_hour,
        };
        Ok(StepOutput { metrics, samples })
    }
}

/// The shaped rewards of the trained groups, (B·G) in group order.
fn shaped_rewards(r: &Rollouts) -> Vec<Option<f32>> {
    r.trained_groups()
        .flat_map(|g| g.shaped.iter().copied())
        .collect()
}

/// The completions of the trained groups that enter the loss, with their advantages, and
/// where they sit in the whole step's list.
/// advantages: (B·G) aligned with the trained groups' completions.
fn training_sequences<'a>(r: &'a Rollouts, advantages: &[f32]) -> (Vec<TrainSeq<'a>>, SeqShard) {
    let mut seqs = Vec::new();
    let mut global_index = Vec::new();
    let mut adv = advantages.iter();
    for (g, &offset) in r.trained_groups().zip(&r.trained_offsets) {
        let mut k = offset;
        for ((c, &keep), &advantage) in g.group.completions.iter().zip(&g.in_loss).zip(&mut adv) {
            if keep {
                seqs.push(TrainSeq {
                    prompt: &g.group.prompt_ids,
                    completion: &c.ids,
                    rollout_logprobs: &c.logprobs,
                    advantage,
                });
                global_index.push(k);
                k += 1;
            }
        }
    }
    let shard = SeqShard {
        global_index,
        total: r.total_seqs,
    };
    (seqs, shard)
}
