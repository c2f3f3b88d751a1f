//! `aha demo`: DeepSeek-R1-Zero's "aha moment" in miniature, on a CPU, in minutes.
//!
//! (Pipeline being written.)

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
pub mod tokenizer;

/// What can go wrong while running the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo tokenizer: {0}")]
    Tokenizer(String),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("rollout engine: {0}")]
    Engine(String),
    #[error("demo config: {0}")]
    Config(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Model(#[from] aha_model::Error),
    #[error(transparent)]
    Train(#[from] crate::Error),
}
