//! How a run reports its steps while it goes: a progress bar on a terminal, one plain line per
//! step otherwise (a log file or a pipe shows progress as it happens, not at the end).

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

/// The kind of progress report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    Off,
    /// A bar on stderr.
    Bar,
    /// `step N/M ...` on stdout, one line per step.
    Lines,
}

impl ProgressMode {
    /// A bar when stdout is a terminal, lines when it is not; `Off` when `enabled` is false.
    pub fn detect(enabled: bool) -> Self {
        match (enabled, std::io::stdout().is_terminal()) {
            (false, _) => Self::Off,
            (true, true) => Self::Bar,
            (true, false) => Self::Lines,
        }
    }
}

pub struct Progress {
    mode: ProgressMode,
    steps: usize,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// `done` steps of `steps` are already behind (a resumed run).
    pub fn new(mode: ProgressMode, steps: usize, done: usize) -> Self {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::new(steps as u64);
            let style =
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
                    .map(|s| s.progress_chars("=> "));
            if let Ok(style) = style {
                bar.set_style(style);
            }
            bar.set_position(done as u64);
            bar
        });
        Self { mode, steps, bar }
    }

    /// Reports that `step` is done; `summary` is a few `name value` pairs.
    pub fn step(&self, step: usize, summary: &str) {
        match (&self.bar, self.mode) {
            (Some(b), _) => {
                b.set_position(step as u64);
                b.set_message(summary.to_string());
            }
            (None, ProgressMode::Lines) => {
                let mut out = std::io::stdout().lock();
                // A closed pipe must not stop training: the metrics files still get every step.
                let _ = writeln!(out, "step {step}/{} {summary}", self.steps);
                let _ = out.flush();
            }
            (None, _) => {}
        }
    }

    /// A line outside the per-step report (a checkpoint written, a stop requested).
    pub fn note(&self, message: &str) {
        match &self.bar {
            Some(b) => b.println(message),
            None if self.mode == ProgressMode::Lines => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{message}");
                let _ = out.flush();
            }
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}
