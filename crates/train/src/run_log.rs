//! What a run writes per step, for `aha train` and `aha sft` alike: a line of `metrics.jsonl`,
//! the step's lines of `samples.jsonl`, the metrics again as TensorBoard scalars, and the
//! progress report.

use serde::Serialize;

use crate::metrics::JsonlWriter;
use std::sync::Arc;

use crate::progress::Progress;
use crate::run_dir::{RunDir, METRICS_FILE, SAMPLES_FILE};
use crate::tensorboard::EventWriter;
use crate::Result;

pub struct RunLog {
    metrics: JsonlWriter,
    samples: JsonlWriter,
    events: EventWriter,
    /// TensorBoard tags are `{prefix}/{field}`.
    prefix: &'static str,
    pub progress: Arc<dyn Progress>,
}

impl RunLog {
    /// Opens the files of `run` (on resume keeping the lines up to its checkpoint).
    pub fn open(
        run: &RunDir,
        prefix: &'static str,
        progress: Arc<dyn Progress>,
        steps: usize,
    ) -> Result<Self> {
        let done = run.done();
        let log = Self {
            metrics: JsonlWriter::open(&run.dir.join(METRICS_FILE), done)?,
            samples: JsonlWriter::open(&run.dir.join(SAMPLES_FILE), done)?,
            events: EventWriter::create(&run.dir, done.map(|d| d + 1))?,
            prefix,
            progress,
        };
        log.progress.start(steps, done.unwrap_or(0));
        Ok(log)
    }

    /// Records step `step`: its metrics (a struct with a `step` field), samples and a progress
    /// summary.
    pub fn step<M: Serialize, S: Serialize>(
        &mut self,
        step: usize,
        metrics: &M,
        samples: &[S],
        summary: &str,
    ) -> Result<()> {
        self.metrics.write(metrics)?;
        for s in samples {
            self.samples.write(s)?;
        }
        self.events.metrics(self.prefix, step, metrics)?;
        self.progress.step(step, summary);
        Ok(())
    }

    /// Samples written outside a step's report (SFT writes them at checkpoints).
    pub fn samples<S: Serialize>(&mut self, samples: &[S]) -> Result<()> {
        samples.iter().try_for_each(|s| self.samples.write(s))
    }
}
