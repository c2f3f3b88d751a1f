//! The crate's error type: configuration mistakes, malformed JSONL input, and external rewards
//! that fail (a program that dies, a server that errs). Built-in verifiers never fail; they
//! return `None` when they cannot judge.

/// Errors from building a reward or scoring a file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no reward terms configured")]
    NoTerms,
    #[error("reward term {index} ({kind}): weight {weight} must be finite")]
    BadWeight {
        index: usize,
        kind: &'static str,
        weight: f32,
    },
    #[error("reward term {index} ({kind}): {message}")]
    BadTerm {
        index: usize,
        kind: &'static str,
        message: String,
    },
    #[error("unknown task {0:?} (expected one of: math, countdown, arithmetic, format, code)")]
    UnknownTask(String),
    #[error("{file}:{line}: {message}")]
    Line {
        file: String,
        line: usize,
        message: String,
    },
    /// A batch that cannot be scored as given (mismatched lengths, a term that broke its
    /// contract).
    #[error("scoring a batch: {0}")]
    Batch(String),
    /// A reward program (`kind = "command"`) that could not start, died, hung or broke the
    /// protocol; `message` ends with its exit status and last stderr lines where known.
    #[error("reward command `{command}` {message}")]
    Command { command: String, message: String },
    /// A reward server (`kind = "http"`) that could not be reached or answered wrongly.
    #[error("reward server {url}: {message}")]
    Http { url: String, message: String },
    /// The code reward's sandbox cannot run (missing tools, bad options, host failure).
    #[error(transparent)]
    Code(#[from] crate::code::SandboxError),
    #[error("writing scores")]
    Write(#[source] std::io::Error),
}
