//! The rollout engine: G sampled completions for each of B prompts, on the policy's own weights.
//!
//! [`generate_groups`] prefills each prompt once, forks its KV cache into G rows
//! ([`aha_model::KvCache::select_rows`] with repeated indices) and decodes all N = B·G rows
//! together; prompts of different lengths are left-padded and every row carries its own positions.
//! Rows that finish (EOS, a stop string, or `max_new_tokens`) are dropped from the cache in batches
//! so they stop costing compute. The model is used through [`aha_model::Model::detached`], so no
//! autodiff graph is ever built and the engine sees the trainer's latest weights without a copy.
//!
//! # Randomness
//!
//! Each completion draws from its own ChaCha stream seeded by a hash of
//! `(params.seed, prompt_index, sample_index)`, so a completion does not depend on which other
//! prompts share its batch, on the batch size, or on the thread count. The trainer folds its step
//! into `params.seed`.
//!
//! # Logprobs
//!
//! `Completion::logprobs[i]` is the log-probability of `ids[i]` under `log_softmax(logits / T)`,
//! with `T = temperature` (`T = 1` for greedy decoding), computed over the **whole** vocabulary,
//! before any top-k / top-p truncation. That is exactly what the trainer recomputes from its own
//! forward at the same temperature, so on-policy importance ratios start at 1. When top-k or
//! top-p is on, the distribution actually sampled from is the truncated, renormalised one, so these
//! logprobs are *not* the behaviour policy's: the ratio π_θ/π_old then silently ignores the
//! truncation (a known source of wrong importance ratios in other trainers). Sample at
//! temperature 1 without truncation for exact on-policy GRPO.
//!
//! # Stops
//!
//! A token in `eos_token_ids` ends its row; the stop-string check ([`StopMatcher`]) runs on the
//! decoded text of the completion so far. The ending token is kept in `ids` with its logprob and
//! the completion's finish reason is [`FinishReason::Stop`]; running out of `max_new_tokens` gives
//! [`FinishReason::Length`].
//!
//! Not here: rewards, advantages, prompt datasets. [`prompt`] turns user input (text, token ids
//! or chat messages) into token ids.

mod generate;
pub mod prompt;
mod sampler;
mod stop;

pub use generate::{generate_groups, generate_groups_from};
pub use prompt::{Prompt, PromptError};
pub use sampler::{completion_rng, sample_token, Sampled};
pub use stop::StopMatcher;

use serde::{Deserialize, Serialize};

/// How completions are sampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// 0 = greedy (argmax, ties to the lowest id).
    pub temperature: f32,
    /// Nucleus sampling mass; 1 = off.
    pub top_p: f32,
    /// Keep only the K most likely tokens; 0 = off.
    pub top_k: usize,
    pub max_new_tokens: usize,
    /// Text that ends a completion (checked on the decoded completion; needs a [`StopMatcher`]).
    pub stop_strings: Vec<String>,
    /// Token ids that end a completion.
    pub eos_token_ids: Vec<u32>,
    pub seed: u64,
    /// Refuse to generate when the KV cache would need more than this many bytes.
    pub max_cache_bytes: Option<usize>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 256,
            stop_strings: Vec::new(),
            eos_token_ids: Vec::new(),
            seed: 0,
            max_cache_bytes: None,
        }
    }
}

impl SamplingParams {
    /// Check the invariants generation relies on.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |m: String| Err(EngineError::Params(m));
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(format!(
                "temperature must be finite and >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if self.max_new_tokens == 0 {
            return bad("max_new_tokens must be at least 1".into());
        }
        if self.stop_strings.iter().any(|s| s.is_empty()) {
            return bad("stop strings must not be empty".into());
        }
        Ok(())
    }
}

/// Why a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An EOS token or a stop string (the token that ended it is the last of `ids`).
    Stop,
    /// `max_new_tokens` reached.
    Length,
}

/// One sampled completion of a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub sample_index: usize,
    /// Completion tokens, including the EOS / stop token if one ended it.
    pub ids: Vec<u32>,
    /// One per id: see the module doc for exactly which distribution.
    pub logprobs: Vec<f32>,
    pub finish_reason: FinishReason,
}

/// The G completions of one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub prompt_index: usize,
    pub prompt_ids: Vec<u32>,
    pub completions: Vec<Completion>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid sampling parameters: {0}")]
    Params(String),
    #[error("prompt {prompt_index}: {message}")]
    Prompt {
        prompt_index: usize,
        message: String,
    },
    #[error(
        "the KV cache for {rows} rows of {capacity} tokens needs {needed} bytes, more than \
         max_cache_bytes = {budget}; use fewer prompts per batch, a smaller G or fewer new tokens"
    )]
    CacheTooLarge {
        rows: usize,
        capacity: usize,
        needed: usize,
        budget: usize,
    },
    #[error("decoding tokens for stop strings: {0}")]
    Decode(String),
    #[error(transparent)]
    Model(#[from] candle_core::Error),
}
