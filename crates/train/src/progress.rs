//! How a run tells its caller that steps are done: a [`Progress`] the caller passes in. The
//! library only reports; drawing (a terminal bar, one line per step) is the CLI's.

use std::sync::Arc;

/// Receives a run's progress. Called from the training thread, between steps.
pub trait Progress: Send + Sync {
    /// The run has `steps` steps, of which `done` are already behind (a resumed run).
    fn start(&self, steps: usize, done: usize);
    /// Step `step` is done; `summary` is a few `name value` pairs.
    fn step(&self, step: usize, summary: &str);
    /// The run is over (finished or stopped).
    fn finish(&self);
}

/// Reports nothing: the default of a library call.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _steps: usize, _done: usize) {}
    fn step(&self, _step: usize, _summary: &str) {}
    fn finish(&self) {}
}

/// [`Silent`], shared.
pub fn silent() -> Arc<dyn Progress> {
    Arc::new(Silent)
}
