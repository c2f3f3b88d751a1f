//! How `aha train` and `aha sft` show a run's steps while it goes: a progress bar on a terminal,
//! one plain line per step otherwise (a log file or a pipe shows progress as it happens, not at
//! the end). The library reports through [`aha_train::progress::Progress`]; this draws it.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, OnceLock};

use aha_train::progress::{self, Progress};
use indicatif::{ProgressBar, ProgressStyle};

/// A bar when stdout is a terminal, lines when it is not, nothing when `enabled` is false.
pub fn detect(enabled: bool) -> Arc<dyn Progress> {
    match (enabled, std::io::stdout().is_terminal()) {
        (false, _) => progress::silent(),
        (true, true) => Arc::new(Bar::default()),
        (true, false) => Arc::new(Lines::default()),
    }
}

/// An indicatif bar on stderr.
#[derive(Default)]
struct Bar {
    bar: OnceLock<ProgressBar>,
}

impl Progress for Bar {
    fn start(&self, steps: usize, done: usize) {
        let bar = ProgressBar::new(steps as u64);
        let style = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .map(|s| s.progress_chars("=> "));
        if let Ok(style) = style {
            bar.set_style(style);
        }
        bar.set_position(done as u64);
        let _ = self.bar.set(bar);
    }

    fn step(&self, step: usize, summary: &str) {
        if let Some(b) = self.bar.get() {
            b.set_position(step as u64);
            b.set_message(summary.to_string());
        }
    }

    fn finish(&self) {
        if let Some(b) = self.bar.get() {
            b.finish();
        }
    }
}

/// `step N/M ...` on stdout, one line per step.
#[derive(Default)]
struct Lines {
    steps: OnceLock<usize>,
}

impl Progress for Lines {
    fn start(&self, steps: usize, _done: usize) {
        let _ = self.steps.set(steps);
    }

    fn step(&self, step: usize, summary: &str) {
        let steps = self.steps.get().copied().unwrap_or(0);
        let mut out = std::io::stdout().lock();
        // A closed pipe must not stop training: the metrics files still get every step.
        let _ = writeln!(out, "step {step}/{steps} {summary}");
        let _ = out.flush();
    }

    fn finish(&self) {}
}
