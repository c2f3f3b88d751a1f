//! aha-demo: DeepSeek-R1-Zero's "aha moment" in miniature, on a CPU, in minutes (`aha demo`).
//!
//! A client of aha-train's public API, as a user's program would be: [`run::run_demo`] takes
//! the 21-token character tokenizer of `aha_model::char_tokenizer`, pretrains a small
//! Qwen2-style base model ([`base`], through `aha_train::sft`) on additions solved in a mix of
//! styles ([`task`], [`corpus`]), evaluates it on held-out problems ([`evaluate`], through
//! `aha_train::eval`), runs R1-Zero — `aha_train::grpo` under a `TrainConfig` built in code, a
//! 0/1 exact-answer reward from aha-verify, no KL penalty, no reasoning data — evaluates again,
//! and writes HF checkpoints, PNG curves ([`plot`]), `report.html` ([`report`]) and
//! `summary.json` ([`summary`]). [`config`] holds the presets; progress goes to a
//! [`run::Observer`] the caller implements (the CLI draws bars).
//!
//! Choices, and what trials showed (2-core machine, see DESIGN.md for the PyTorch prototype):
//! - Column work has a fixed width per column (`1+7+0=08`): a small decoder learns it several
//!   times faster than `1+7=8 … 4+5+1=10`, because every digit it needs sits at a fixed
//!   distance from where it is written.
//! - Pretraining batches of 32 documents learn the column work from fewer documents than 64; a
//!   learning rate of 1e-2 does not learn it at all; 8 heads do no better than 4.
//! - Candle's thread pool spin-waits; on a loaded 2-core machine one thread
//!   (`CANDLE_NUM_THREADS=1`) was faster than two.
//! - With the prototype's mix from the start (10% thinking) the base model stays on a loss
//!   plateau and never uses the prompt's digits within minutes of pretraining here (0% base
//!   accuracy after 1000 × 32 documents; also with 30% thinking, 3 digits or 2 digits). So
//!   pretraining opens with a "textbook" phase (`pretrain.skill_steps` steps with half the
//!   documents worked out) that teaches the column work, then switches to the prototype's mix,
//!   which sets the base model's preference for answering directly.
//! - The textbook phase must be pure (all worked solutions): with half direct answers even
//!   1600 steps left the column work wrong. 600 pure steps give ~55% think accuracy (the skill
//!   appears suddenly between steps 300 and 600). At the full learning rate the mixed phase
//!   then erases it (55% → 2% in 300 steps), so the rate decays (cosine to 0.1) and the mixed
//!   phase is short (100 steps): enough to make answering directly the base model's habit.
//! - Measured with seed 0 on a loaded 2-core machine: base 3.5% → 55.9% held-out accuracy,
//!   think share 8.9% → 99.8%, length 10.3 → 44.5 tokens, in 186 s (134 s pretraining, 50 s
//!   GRPO). The base model is weaker than the prototype's (29%) because its direct answers
//!   rarely land; the story is the same.

pub mod base;
pub mod config;
pub mod corpus;
pub mod evaluate;
pub mod kl;
pub mod plot;
pub mod report;
pub mod run;
pub mod summary;
pub mod task;

/// What can go wrong while running the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The OS error is the source, not part of the message, so `{:#}` shows it once.
    #[error("{}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("demo config: {0}")]
    Config(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Model(#[from] aha_model::Error),
    #[error(transparent)]
    Train(#[from] aha_train::Error),
}
