//! aha-train: the trainers of the R1 recipe.
//!
//! [`algo`] holds GRPO's maths as pure functions (group advantages, clipped policy loss, KL
//! estimators, loss aggregation, overlong handling, the dynamic-sampling filter). [`optim`] is
//! AdamW with savable state, the learning-rate schedule and gradient accumulation. [`batch`]
//! packs prompts and completions into padded tensors and scores them. [`sft`] is the supervised
//! trainer.

pub mod algo;
pub mod batch;
pub mod demo;
pub mod engine;
pub mod error;
pub mod optim;
pub mod sft;

pub use error::{Error, Result};
