//! What `aha train` and `aha sft` share: the run flags, reading the config, the run's options, the
//! stop on SIGINT/SIGTERM, and the message and exit status of a stopped run.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use aha_train::collective::Collective;
use aha_train::config::RunConfig;
use aha_train::run::RunOptions;
use anyhow::Context;
use signal_hook::consts::{SIGINT, SIGTERM};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The run config (TOML). Relative paths inside it (model.path, the data path) start at the
    /// config file's directory; paths on the command line, `--set` values included, start at
    /// the current directory.
    pub config: PathBuf,
    /// Override a config value: `--set steps=100 --set optim.lr=1e-5`. Values are typed by the
    /// field they replace; repeat for several.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Where the run's files go (default: runs/NAME).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Continue from the newest complete checkpoint in the run directory. The config must
    /// match the saved config.toml except for steps, name, device, [output] and
    /// micro_batch_size.
    #[arg(long)]
    pub resume: bool,
    /// Print the resolved config (every default written out) and exit.
    #[arg(long)]
    pub show_config: bool,
    /// Run on this device instead of the config's `device`: cpu, cuda or cuda:N (cuda needs
    /// the CUDA build, scripts/build-cuda.sh). Same as `--set device=…`.
    #[arg(long)]
    pub device: Option<aha_model::DeviceSpec>,
    /// Compute in this dtype instead of the config's `dtype`: f32, or bf16 (GPUs; f32 master
    /// weights and optimizer state). Same as `--set dtype=…`.
    #[arg(long)]
    pub dtype: Option<aha_model::Precision>,
}

impl RunArgs {
    /// Runs `run` under these flags: reads the config with the overrides, installs the stop
    /// signal and runs as one rank of `world`. Returns the run's summary and the signal on rank
    /// 0; `None` on the other ranks, and under `--show-config`, which prints the config instead.
    pub fn run<C: RunConfig, S>(
        &self,
        world: &Arc<dyn Collective>,
        run: impl FnOnce(C, RunOptions) -> aha_train::Result<S>,
    ) -> anyhow::Result<Option<(S, StopSignal)>> {
        let cfg = C::load(&self.config, &self.overrides())
            .with_context(|| format!("reading config {}", self.config.display()))?;
        if self.show_config {
            print!("{}", cfg.to_toml()?);
            return Ok(None);
        }
        let stop = StopSignal::install()?;
        let opts = RunOptions {
            run_dir: self.run_dir.clone(),
            resume: self.resume,
            progress: crate::progress::detect(cfg.output().progress),
            stop: Some(stop.flag.clone()),
            collective: world.clone(),
        };
        let summary = run(cfg, opts)?;
        Ok((world.rank() == 0).then_some((summary, stop)))
    }

    /// The config overrides: every `--set`, then `--device` and `--dtype` as the keys they name.
    pub fn overrides(&self) -> Vec<String> {
        let mut set = self.set.clone();
        set.extend(self.device.map(|d| format!("device={d}")));
        set.extend(self.dtype.map(|d| format!("dtype={d}")));
        set
    }
}

/// Set by the first SIGINT or SIGTERM; the run checks it between steps.
pub struct StopSignal {
    pub flag: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
}

impl StopSignal {
    /// Installs the handlers: the first signal asks the run to stop after the current step
    /// with a checkpoint; a second one ends the process at once.
    pub fn install() -> anyhow::Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicUsize::new(0));
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
            .context("installing the SIGINT/SIGTERM handlers")?;
        let (f, s) = (flag.clone(), signal.clone());
        std::thread::spawn(move || {
            for sig in signals.forever() {
                if f.swap(true, Ordering::SeqCst) {
                    eprintln!("\n{}: stopping now, without a checkpoint", name(sig));
                    std::process::exit(exit_status(sig));
                }
                s.store(sig as usize, Ordering::SeqCst);
                eprintln!(
                    "\n{}: stopping after the current step with a checkpoint \
                     (send it again to stop at once)",
                    name(sig)
                );
            }
        });
        Ok(Self { flag, signal })
    }

    /// After a run that stopped on the flag: says where its checkpoint is and how to go on,
    /// then exits with 128 + the signal number.
    pub fn exit_stopped(&self, step: usize, checkpoint: Option<&Path>, resume: &str) -> ! {
        let sig = self.signal.load(Ordering::SeqCst) as i32;
        match checkpoint {
            Some(c) => eprintln!(
                "stopped by {} after step {step}; checkpoint saved to {}\n\
                 continue with: {resume}",
                name(sig),
                c.display()
            ),
            None => eprintln!("stopped by {} after step {step}", name(sig)),
        }
        std::process::exit(exit_status(sig))
    }
}

fn name(sig: i32) -> &'static str {
    match sig {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// The shell's convention for a process ended by a signal.
fn exit_status(sig: i32) -> i32 {
    128 + sig
}

impl RunArgs {
    /// The command line that resumes this run in `run_dir`.
    pub fn resume_command(&self, command: &str, run_dir: &Path) -> String {
        let mut line = format!(
            "aha {command} {} --run-dir {} --resume",
            self.config.display(),
            run_dir.display()
        );
        for s in &self.set {
            line.push_str(&format!(" --set {s}"));
        }
        line
    }
}
