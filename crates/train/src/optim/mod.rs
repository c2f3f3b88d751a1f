//! Optimisation machinery shared by the GRPO and SFT trainers: AdamW with savable state, the
//! learning-rate schedule, and gradient accumulation / clipping.

pub mod adamw;
pub mod config;
mod fused;
pub mod grads;
pub mod schedule;
pub mod update;

pub use adamw::{AdamW, AdamWConfig, Gradients};
pub use config::OptimConfig;
pub use grads::{clip_grad_norm, clip_scale, global_norm, GradAccumulator};
pub use schedule::{LrDecay, LrSchedule};
pub use update::{UpdateCounters, UpdateOutcome, Updater};
