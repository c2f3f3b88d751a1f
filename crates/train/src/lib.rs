//! aha-train: the trainers of the R1 recipe.
//!
//! The GRPO step ([`grpo::GrpoTrainer::step`]) reads top to bottom as the pipeline: prompts from
//! [`data`] → rollouts from the [`engine`] → rewards ([`reward`], over `aha_verify`) → group
//! advantages and the clipped, KL-regularised loss ([`algo`], pure functions) → the update
//! ([`grpo::update`], micro-batched, through [`optim`]'s AdamW) → [`metrics`]. [`config`] is the
//! run config (TOML, presets, `--set`), [`run`] the on-disk run with checkpoints and resume.
//! [`sft`] is the supervised trainer and [`eval`] the pass@k / maj@k evaluation; [`rejection`]
//! samples and filters correct completions into SFT data. [`batch`] packs prompts and completions
//! into padded tensors and scores them. [`collective`] is what data-parallel ranks exchange (one
//! process by default, MPI with the `mpi` feature).

pub mod algo;
pub mod batch;
pub mod collective;
pub mod config;
pub mod data;
pub mod engine;
pub mod error;
pub mod eval;
pub mod grpo;
pub mod init_model;
pub mod metrics;
pub mod optim;
pub mod progress;
pub mod rejection;
pub mod reward;
pub mod run;
pub mod run_dir;
pub mod run_log;
pub mod sft;
pub mod sft_config;
pub mod sft_run;
pub mod tensorboard;
pub mod worker;

pub use error::{Error, Result};
