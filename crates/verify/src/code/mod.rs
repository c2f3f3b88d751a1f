//! The code execution reward: a completion's last ```` ```python ```` block is run in a
//! bubblewrap sandbox against the row's test cases, as R1 did for code.
//!
//! - [`extract_program`] finds the program (`program.rs`);
//! - [`Sandbox`] runs one untrusted program under limits and leaves no process behind
//!   (`sandbox.rs`: how it is isolated and why);
//! - [`CodeRunner`] judges a batch against [`TestCase`]s in parallel slots, configured by a
//!   [`CodeConfig`] (`runner.rs`: what passing means);
//! - [`CodeTerm`] is the `[[reward]] kind = "code"` term over the batch interface (`term.rs`).
//!
//! The sandbox needs `bwrap` (Debian package `bubblewrap`), `setpriv` (`util-linux`) and root, to
//! drop each run to an unprivileged uid; without them [`CodeRunner::new`] fails and says what is
//! missing. Nothing here ever runs a program outside the sandbox.

mod program;
mod runner;
mod sandbox;
mod term;
mod uids;

pub use program::extract_program;
pub use runner::{
    outputs_match, parse_tests, CodeConfig, CodeRunner, CodeVerdict, Problem, RunStats, TestCase,
};
pub use sandbox::{processes_of, Execution, Limits, Sandbox, Status, MAX_PROGRAM_BYTES};
pub use term::CodeTerm;

/// Why the sandbox cannot run: the host, not the program.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the code reward needs `{tool}`, which is not installed: install {package} (Debian: apt-get install {package}); untrusted code is never run unsandboxed")]
    Missing { tool: String, package: &'static str },
    #[error("the code reward must run as root, to drop each program to an unprivileged uid with setpriv (RLIMIT_NPROC does not bind root, nor bwrap's mapped root)")]
    NotRoot,
    #[error("code reward: {0}")]
    Config(String),
    #[error("the code sandbox does not work on this host: a trivial program ended {status}; bwrap said: {stderr}")]
    Probe { status: String, stderr: String },
    #[error("starting the code sandbox")]
    Spawn(#[source] std::io::Error),
    #[error("supervising a sandboxed program")]
    Io(#[source] std::io::Error),
}
