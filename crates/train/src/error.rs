//! Errors of the training crate: each names the file, line, field or step it is about.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The I/O error is part of the message, not a `source`, so error chains print it once.
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    /// A bad row of a dataset: `line` is 1-based (a row index for Parquet).
    #[error("{path}:{line}: {message}")]
    Data {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// An invalid configuration value; `field` is the dotted key.
    #[error("config `{field}`: {message}")]
    Config { field: String, message: String },
    /// A config file that does not parse; `message` carries the parser's line and column.
    #[error("{path}: {message}")]
    ConfigFile { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    /// Tensors or slices of the wrong shape entering a public function.
    #[error("shape: {0}")]
    Shape(String),
    /// Training cannot continue (repeated non-finite losses or gradients).
    #[error("training stopped: {0}")]
    Diverged(String),
    /// A data-parallel job's ranks disagree or their communication failed.
    #[error("data parallel: {0}")]
    Collective(String),
    #[error(transparent)]
    Model(#[from] aha_model::Error),
    #[error("rollout")]
    Engine(#[from] crate::engine::EngineError),
    #[error(transparent)]
    Verify(#[from] aha_verify::Error),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            err,
        }
    }

    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }
}
