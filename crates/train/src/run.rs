//! A GRPO run on disk: checks everything that can fail before any compute, then steps the
//! trainer, writing the shared run layout ([`crate::run_dir`]: config.toml, metrics.jsonl,
//! samples.jsonl, TensorBoard events, `checkpoints/step_NNNNNN` with optimizer.safetensors and
//! trainer_state.json).
//!
//! `resume` continues from the newest complete checkpoint; metrics and samples written after it
//! (by a run that died before its next checkpoint) are dropped so the files read as one run. A
//! set stop flag ends the run after the current step with a checkpoint.
//!
//! In a data-parallel job every rank runs [`train`]; rank 0 alone checks and writes the run
//! directory (the others read only the checkpoint rank 0 resumes from), and every step, stop
//! decision and metrics line is the whole job's.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aha_model::load::GenerationConfig;
use aha_model::tokenizer::Tokenizer;
use aha_model::Model;
use candle_core::Device;

use crate::collective::{self, any_rank, check_replicas, check_run_dir, Collective};
use crate::config::{DeviceSpec, ModelSection, RunConfig, TrainConfig};
use crate::grpo::GrpoTrainer;
use crate::metrics::StepMetrics;
use crate::progress::{self, Progress};
use crate::run_dir::prune_checkpoints;
use crate::run_log::RunLog;
use crate::{Error, Result};

pub struct RunOptions {
    /// Defaults to `runs/NAME`.
    pub run_dir: Option<PathBuf>,
    pub resume: bool,
    /// Told of every step; [`progress::silent`] by default.
    pub progress: Arc<dyn Progress>,
    /// Set (by a signal handler) to stop after the current step, with a checkpoint.
    pub stop: Option<Arc<AtomicBool>>,
    /// The job's ranks; one process by default.
    pub collective: Arc<dyn Collective>,
}

impl RunOptions {
    /// One process, no progress report and no stop flag.
    pub fn new(run_dir: Option<PathBuf>, resume: bool) -> Self {
        Self {
            run_dir,
            resume,
            progress: progress::silent(),
            stop: None,
            collective: collective::single(),
        }
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }
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
    /// The newest checkpoint this invocation wrote.
    pub checkpoint: Option<PathBuf>,
    /// The run stopped early because the stop flag was set.
    pub stopped: bool,
}

/// The candle device a config names; CUDA in a build without it is a config error that says how
/// to build it.
pub fn device(spec: DeviceSpec) -> Result<Device> {
    spec.open()
        .map_err(|e| Error::config("device", e.to_string()))
}

/// A policy to train, as loaded from `[model]`.
pub struct Policy {
    pub model: Model,
    pub tokenizer: Tokenizer,
    /// The checkpoint's `generation_config.json`, written back unchanged into every checkpoint
    /// of the run (it may list several end-of-sequence ids where config.json lists one).
    pub generation: Option<GenerationConfig>,
}

/// The policy (trainable) and tokenizer `[model]` names.
pub fn load_policy(section: &ModelSection, device: &Device) -> Result<Policy> {
    match (&section.path, &section.init) {
        (Some(path), None) => {
            if !path.is_dir() {
                return Err(Error::config(
                    "model.path",
                    format!("{} is not a checkpoint directory", path.display()),
                ));
            }
            let model = aha_model::load::load_model(path, device, true)?;
            let tokenizer = Tokenizer::from_dir(path)?;
            let file = path.join(aha_model::load::GENERATION_FILE);
            let generation = match file.is_file() {
                true => Some(GenerationConfig::from_file(&file)?),
                false => None,
            };
            Ok(Policy {
                model,
                tokenizer,
                generation,
            })
        }
        (None, Some(preset)) => {
            let (model, tokenizer) =
                crate::init_model::init_preset(*preset, section.init_seed, device)?;
            Ok(Policy {
                model,
                tokenizer,
                generation: None,
            })
        }
        _ => Err(Error::config(
            "model",
            "set exactly one of `path` and `init`",
        )),
    }
}

/// Runs `cfg` to `cfg.steps` steps, or until `opts.stop` is set.
///
/// Everything that can fail on the config, the model or the data fails before a file of the
/// run directory is written (see [`RunDir`]).
pub fn train(cfg: TrainConfig, opts: RunOptions) -> Result<RunSummary> {
    let dir = opts
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
    let config_toml = cfg.to_toml()?;
    let comm = opts.collective.clone();
    let root = comm.rank() == 0;
    let run = check_run_dir(&*comm, &dir, opts.resume, &config_toml)?;
    let needs = crate::data::Needs::of(&cfg.reward()?);
    let (dataset, skipped_rows) = cfg.data.open_for(needs)?;
    let device = device(cfg.device)?;
    let mut policy = load_policy(&cfg.model, &device)?;
    policy.model = policy.model.with_precision(cfg.dtype);
    if let crate::data::Dataset::Rows { path, items } = &dataset {
        crate::data::check_token_ids(path, items, policy.model.config().vocab_size)?;
    }
    let (steps, output) = (cfg.steps, cfg.output.clone());
    let mut trainer = GrpoTrainer::new(cfg, policy.model, policy.tokenizer, dataset)?
        .with_collective(comm.clone());
    trainer.set_generation_config(policy.generation);
    if let Some((_, ckpt)) = &run.resume_from {
        trainer.restore_checkpoint(ckpt)?;
    }
    check_replicas(&*comm, trainer.policy().vars(), "at the start")?;
    let done = trainer.state().step;
    let mut log = match root {
        true => {
            run.begin(&config_toml)?;
            Some(RunLog::open(&run, "grpo", opts.progress.clone(), steps)?)
        }
        false => None,
    };

    let (mut last, mut checkpoint, mut stopped) = (None, None, false);
    while trainer.state().step < steps {
        let out = trainer.step().map_err(|e| match e {
            Error::Diverged(m) => Error::Diverged(format!(
                "{m}; the newest good checkpoint is under {}",
                run.checkpoints().display()
            )),
            e => e,
        })?;
        let (m, step) = (&out.metrics, out.metrics.step);
        let summary = format!(
            "reward {:.3} acc {:.3} len {:.0} {:.0} tok/s",
            m.reward_mean, m.accuracy, m.completion_len_mean, m.tokens_per_s
        );
        if let Some(log) = &mut log {
            log.step(step, m, &out.samples, &summary)?;
        }
        // A signal may reach the ranks in different steps: all stop when any has seen one.
        stopped = any_rank(&*comm, opts.stop_requested())?;
        if step.is_multiple_of(output.checkpoint_every) || step == steps || stopped {
            let ckpt = run.checkpoint(step);
            if root {
                trainer.save_checkpoint(&ckpt)?;
                prune_checkpoints(&run.checkpoints(), output.keep_last)?;
            }
            checkpoint = Some(ckpt);
        }
        last = Some(out.metrics);
        if stopped {
            break;
        }
    }
    if let Some(log) = &mut log {
        log.progress.finish();
    }
    // The other ranks wait for rank 0's last checkpoint: the job ends when it is on disk.
    comm.barrier()?;
    Ok(RunSummary {
        run_dir: dir,
        steps: trainer.state().step,
        steps_run: trainer.state().step - done,
        resumed_from: run.resume_from.map(|(_, d)| d),
        last,
        skipped_rows,
        checkpoint,
        stopped,
    })
}
