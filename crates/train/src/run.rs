//! A GRPO run on disk: checks everything that can fail before any compute, then steps the
//! trainer, writing `metrics.jsonl`, `samples.jsonl` and checkpoints into the run directory.
//!
//! ```text
//! RUN/config.toml          the resolved config (every default written out)
//! RUN/metrics.jsonl        one StepMetrics per step
//! RUN/samples.jsonl        a few completions per step
//! RUN/checkpoints/step_000100/   HF checkpoint + optimizer.safetensors + trainer_state.json
//! ```
//!
//! `resume` continues from the newest complete checkpoint; metrics and samples written after it
//! (by a run that died before its next checkpoint) are dropped so the files read as one run.

use std::path::{Path, PathBuf};

use aha_model::tokenizer::Tokenizer;
use aha_model::Model;
use candle_core::Device;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{DeviceKind, TrainConfig};
use crate::grpo::checkpoint::{checkpoint_name, newest_checkpoint};
use crate::grpo::GrpoTrainer;
use crate::metrics::{JsonlWriter, StepMetrics};
use crate::{Error, Result};

pub struct RunOptions {
    /// Defaults to `runs/NAME`.
    pub run_dir: Option<PathBuf>,
    pub resume: bool,
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    /// Steps done in total (including those before a resume).
    pub steps: usize,
    /// Steps this invocation ran.
    pub steps_run: usize,
    pub resumed_from: Option<PathBuf>,
    pub last: Option<StepMetrics>,
    /// Dataset rows left out for a missing answer.
    pub skipped_rows: usize,
}

pub fn device(kind: DeviceKind) -> Result<Device> {
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        DeviceKind::Cuda => Device::new_cuda(0).map_err(|e| {
            Error::config(
                "device",
                format!("cuda is not available in this build: {e}"),
            )
        }),
    }
}

/// The policy (trainable) and tokenizer the config names.
pub fn load_policy(cfg: &TrainConfig, device: &Device) -> Result<(Model, Tokenizer)> {
    match (&cfg.model.path, &cfg.model.init) {
        (Some(path), _) => {
            if !path.is_dir() {
                return Err(Error::config(
                    "model.path",
                    format!("{} is not a checkpoint directory", path.display()),
                ));
            }
            let model = aha_model::load::load_model(path, device, true)?;
            let tokenizer = Tokenizer::from_dir(path)?;
            Ok((model, tokenizer))
        }
        (None, Some(preset)) => crate::init_model::init_policy(preset, cfg.model.init_seed, device),
        (None, None) => Err(Error::config("model", "set `path` or `init`")),
    }
}

/// Runs `cfg` to `cfg.steps` steps. `progress` draws a progress bar on stderr.
pub fn train(cfg: TrainConfig, opts: RunOptions, progress: bool) -> Result<RunSummary> {
    let run_dir = opts
        .run_dir
        .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
    let ckpt_dir = run_dir.join("checkpoints");
    prepare_run_dir(&run_dir, opts.resume)?;
    let needs = crate::data::Needs::of(&cfg.reward()?);
    let (dataset, skipped_rows) = cfg.data.open_for(needs)?;
    let device = device(cfg.device)?;
    let (policy, tokenizer) = load_policy(&cfg, &device)?;
    std::fs::write(run_dir.join("config.toml"), cfg.to_toml()?)
        .map_err(|e| Error::io(run_dir.join("config.toml"), e))?;

    let steps = cfg.steps;
    let every = cfg.output.checkpoint_every;
    let mut trainer = GrpoTrainer::new(cfg, policy, tokenizer, dataset)?;
    let resumed_from = match opts.resume {
        true => newest_checkpoint(&ckpt_dir)?,
        false => None,
    };
    if let Some((_, dir)) = &resumed_from {
        trainer.restore_checkpoint(dir)?;
    }
    let done = trainer.state().step;
    let keep = resumed_from.as_ref().map(|_| done);
    let mut metrics = JsonlWriter::open(&run_dir.join("metrics.jsonl"), keep)?;
    let mut samples = JsonlWriter::open(&run_dir.join("samples.jsonl"), keep)?;

    let bar = progress_bar(progress, steps, done);
    let mut last = None;
    while trainer.state().step < steps {
        let out = trainer.step().map_err(|e| match e {
            Error::Diverged(m) => Error::Diverged(format!(
                "{m}; the newest good checkpoint is under {}",
                ckpt_dir.display()
            )),
            e => e,
        })?;
        metrics.write(&out.metrics)?;
        for s in &out.samples {
            samples.write(s)?;
        }
        let step = out.metrics.step;
        if step.is_multiple_of(every) || step == steps {
            trainer.save_checkpoint(&ckpt_dir.join(checkpoint_name(step)))?;
        }
        if let Some(b) = &bar {
            let m = &out.metrics;
            b.set_position(step as u64);
            b.set_message(format!(
                "reward {:.3} acc {:.3} len {:.0} {:.0} tok/s",
                m.reward_mean, m.accuracy, m.completion_len_mean, m.tokens_per_s
            ));
        }
        last = Some(out.metrics);
    }
    if let Some(b) = bar {
        b.finish();
    }
    Ok(RunSummary {
        run_dir,
        steps: trainer.state().step,
        steps_run: trainer.state().step - done,
        resumed_from: resumed_from.map(|(_, d)| d),
        last,
        skipped_rows,
    })
}

/// Creates the run directory and checks it is writable; refuses to overwrite a run unless
/// resuming.
fn prepare_run_dir(dir: &Path, resume: bool) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    if !resume && dir.join("metrics.jsonl").exists() {
        return Err(Error::Checkpoint {
            path: dir.into(),
            message:
                "already holds a run; pass --resume to continue it or choose another --run-dir"
                    .into(),
        });
    }
    let probe = dir.join(".write_test");
    std::fs::write(&probe, b"").map_err(|e| Error::io(&probe, e))?;
    std::fs::remove_file(&probe).map_err(|e| Error::io(&probe, e))
}

fn progress_bar(show: bool, steps: usize, done: usize) -> Option<ProgressBar> {
    if !show {
        return None;
    }
    let bar = ProgressBar::new(steps as u64);
    let style = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
        .map(|s| s.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar.set_position(done as u64);
    Some(bar)
}
