//! The GRPO trainer: [`GrpoTrainer::step`] is the R1 recipe in ten lines — prompts → rollouts →
//! rewards → group advantages → policy update → metrics.
//!
//! The trainer owns the policy, the optional frozen reference (only when β > 0: β = 0 costs no
//! memory and no forward), the optimizer, the prompt stream and the reward. It writes no files;
//! [`checkpoint`] saves and restores its state, `run` drives it with a run directory.

pub mod checkpoint;
pub mod rollout;
pub mod update;

use std::time::Instant;

use aha_model::load::GenerationConfig;
use aha_model::tokenizer::Tokenizer;
use aha_model::Model;
use aha_verify::Reward;
use serde::{Deserialize, Serialize};

use crate::algo;
use crate::config::TrainConfig;
use crate::data::{Dataset, PromptStream};
use crate::engine::{FinishReason, SamplingParams};
use crate::metrics::{forward_flops, mean_std, Sample, StepMetrics};
use crate::optim::{UpdateCounters, Updater};
use crate::Result;
use rollout::{collect_rollouts, RolloutContext, Rollouts};
use update::{TrainSeq, UpdateContext, UpdateStats};

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
        })
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
        let seqs = training_sequences(&rollouts, &advantages); // the completions in the loss
        let (stats, update_s) = self.update(&seqs)?; // μ passes over minibatches
        self.state.step += 1;
        self.maybe_reset_reference()?;
        let step_s = started.elapsed().as_secs_f64();
        Ok(self.report(&rollouts, &seqs, &stats, update_s, step_s))
    }

    fn advantages(&self, rewards: &[Option<f32>]) -> Result<Vec<f32>> {
        let (g, grpo) = (self.cfg.rollout.group_size, &self.cfg.grpo);
        algo::group_advantages(rewards, g, grpo.advantage, grpo.adv_eps)
    }

    /// The policy update and its seconds.
    fn update(&mut self, seqs: &[TrainSeq<'_>]) -> Result<(UpdateStats, f64)> {
        let (ctx, started) = (self.update_context(), Instant::now());
        let reference = self.reference.as_ref();
        let stats = update::update(
            &self.policy,
            reference,
            &mut self.updater,
            seqs,
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

    /// Metrics and samples of the step just done; also advances the cost counters.
    fn report(
        &mut self,
        r: &Rollouts,
        seqs: &[TrainSeq<'_>],
        stats: &UpdateStats,
        update_s: f64,
        step_s: f64,
    ) -> StepOutput {
        let mcfg = self.policy.config();
        let completions = r
            .groups
            .iter()
            .flat_map(|g| g.group.completions.iter().zip(&g.scores));
        let mut rewards = Vec::new();
        let (mut judged_correct, mut correct, mut formatted, mut truncated, mut n) =
            (0, 0, 0, 0, 0);
        let (mut len_sum, mut len_max) = (0usize, 0usize);
        for (c, s) in completions {
            n += 1;
            rewards.extend(s.reward.map(f64::from));
            if let Some(ok) = s.correct {
                judged_correct += 1;
                correct += usize::from(ok);
            }
            formatted += usize::from(s.well_formed);
            truncated += usize::from(c.finish_reason == FinishReason::Length);
            len_sum += c.ids.len();
            len_max = len_max.max(c.ids.len());
        }
        let (reward_mean, reward_std) = mean_std(&rewards);
        let share = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };

        let mut flops = 0.0;
        for g in &r.groups {
            let p = g.group.prompt_ids.len();
            flops += forward_flops(mcfg, 0, p);
            flops += g
                .group
                .completions
                .iter()
                .map(|c| forward_flops(mcfg, p, c.ids.len()))
                .sum::<f64>();
        }
        let trained: f64 = seqs
            .iter()
            .map(|s| forward_flops(mcfg, 0, s.prompt.len() + s.completion.len()))
            .sum();
        let reference = if self.reference.is_some() {
            trained
        } else {
            0.0
        };
        flops += 3.0 * trained * self.cfg.grpo.passes as f64 + reference;
        self.state.flops += flops;
        self.state.device_seconds += step_s;
        self.state.counters = self.updater.counters;
        let device_hours = self.state.device_seconds / 3600.0;

        let step = self.state.step;
        let samples = r
            .groups
            .iter()
            .take(self.cfg.output.samples_per_step)
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
            .collect();
        let metrics = StepMetrics {
            step,
            reward_mean,
            reward_std,
            accuracy: share(correct, judged_correct),
            format_rate: share(formatted, n),
            completion_len_mean: share(len_sum, n),
            completion_len_max: len_max,
            truncated_share: share(truncated, n),
            unjudged: n - rewards.len(),
            groups_generated: r.groups.len(),
            groups_trained: r.trained.len(),
            loss: stats.loss,
            kl: stats.kl,
            clip_fraction: stats.clip_fraction,
            entropy: stats.entropy,
            grad_norm: stats.grad_norm,
            lr: stats.lr,
            skipped_updates: stats.skipped_updates,
            generated_tokens: len_sum,
            tokens_per_s: (len_sum + stats.tokens) as f64 / step_s.max(1e-9),
            rollout_s: r.rollout_s,
            reward_s: r.reward_s,
            update_s,
            step_s,
            flops: self.state.flops,
            device_hours,
            cost_usd: device_hours * self.cfg.output.price_per_device_hour,
        };
        StepOutput { metrics, samples }
    }
}

/// The shaped rewards of the trained groups, (B·G) in group order.
fn shaped_rewards(r: &Rollouts) -> Vec<Option<f32>> {
    r.trained_groups()
        .flat_map(|g| g.shaped.iter().copied())
        .collect()
}

/// The completions of the trained groups that enter the loss, with their advantages.
/// advantages: (B·G) aligned with the trained groups' completions.
fn training_sequences<'a>(r: &'a Rollouts, advantages: &[f32]) -> Vec<TrainSeq<'a>> {
    r.trained_groups()
        .flat_map(|g| {
            g.group
                .completions
                .iter()
                .zip(&g.in_loss)
                .map(move |(c, &keep)| (g, c, keep))
        })
        .zip(advantages)
        .filter(|((_, _, keep), _)| *keep)
        .map(|((g, c, _), &advantage)| TrainSeq {
            prompt: &g.group.prompt_ids,
            completion: &c.ids,
            rollout_logprobs: &c.logprobs,
            advantage,
        })
        .collect()
}
