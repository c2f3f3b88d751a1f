//! aha-demo: DeepSeek-R1-Zero's "aha moment" in miniature, on a CPU, in minutes (`aha demo`).
//!
//! A client of aha-train's public API, as a user's program would be: [`run::run_demo`] takes
//! the 21-token character tokenizer of `aha_model::char_tokenizer`, pretrains a small
//! Qwen2-style base model ([`base`], through `aha_train::sft`) on additions solved in a mix of
//! styles ([`task`], [`corpus`]) until it can think ([`gate`]), evaluates it on held-out
//! problems ([`evaluate`], through `aha_train::eval`), runs R1-Zero — `aha_train::grpo` under
//! a `TrainConfig` built in code, a 0/1 exact-answer reward from aha-verify, no KL penalty, no
//! reasoning data — evaluates again, and writes HF checkpoints, `report.html` with its curves
//! ([`report`], [`plot`]) and `summary.json` ([`summary`]). [`config`] holds the presets;
//! progress goes to a [`run::Observer`] the caller implements (the CLI draws bars).
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
//!   1600 steps left the column work wrong. The skill appears suddenly, at a step that depends
//!   on the seed (seed 0: between 300 and 600; seed 1: 600–900), so a fixed step count failed
//!   one seed in five (seed 1 at 800 steps thought right 3.4% of the time; GRPO then taught it
//!   to think wrongly, +10.8 points). The textbook phase therefore ends at the competence gate
//!   ([`gate`]): from step 500, every 100 steps, the model is made to think on 100 fresh
//!   problems, and it moves on once it solves 90% (`--quick`: 60%) or gives up at the step cap
//!   (2000; `--quick`: 900), saying the base model never learned the written method.
//! - The textbook rate decays (cosine to a tenth) over 2000 steps whenever the gate stops it:
//!   seed 1 thought right 35% of the time at step 700 under a decay over 1600 steps, 19% under
//!   one over 800 (then 65% and 90% at steps 800 and 1100). The mixed phase (100 steps) then runs on a fresh optimizer at a constant
//!   3e-4: at the textbook's rate it erased the column work (55% → 2% in 300 steps); even at
//!   3e-4 it costs some (seed 1: 90% at the gate, 58% on the held-out problems after the mix),
//!   which GRPO wins back (94% after GRPO).
//! - Results do not depend on the thread count: the base and final weights of a short run were
//!   bit-identical under `RAYON_NUM_THREADS=1` and 2.

pub mod base;
pub mod config;
pub mod corpus;
pub mod evaluate;
pub mod gate;
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
    /// A fault in `report.html.j2` or its context: minijinja's error names the line.
    #[error("rendering report.html")]
    Report(#[source] minijinja::Error),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Model(#[from] aha_model::Error),
    #[error(transparent)]
    Train(#[from] aha_train::Error),
}
