//! `aha sft`: supervised fine-tuning (cold start, rejection-sampled data, distillation, or
//! pretraining with `sft.loss_on = "all"`) from a TOML config shaped like `aha train`'s.

use std::sync::Arc;

use aha_train::collective::Collective;
use aha_train::sft_run::{run_sft, SftOptions, SftRunConfig};
use anyhow::Context;

use super::run_args::{RunArgs, StopSignal};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// name, seed, steps; [model] path or init; [data] path (JSONL or Parquet of
    /// {"prompt", "completion"} or {"messages"}); [sft] batch_size, micro_batch_size, loss_on;
    /// [optim]; [output]. See configs/sft_smoke.toml.
    #[command(flatten)]
    pub run: RunArgs,
}

/// One rank of the job `world` (one process unless started by mpirun or srun).
pub fn run(args: Args, world: Arc<dyn Collective>) -> anyhow::Result<()> {
    let a = &args.run;
    let cfg = SftRunConfig::load(&a.config, &a.overrides())
        .with_context(|| format!("reading config {}", a.config.display()))?;
    if a.show_config {
        print!("{}", cfg.to_toml()?);
        return Ok(());
    }
    let stop = StopSignal::install()?;
    let opts = SftOptions {
        run_dir: a.run_dir.clone(),
        resume: a.resume,
        progress: crate::progress::detect(cfg.output.progress),
        stop: Some(stop.flag.clone()),
        collective: world.clone(),
    };
    let s = run_sft(&cfg, opts)?;
    if world.rank() != 0 {
        return Ok(());
    }
    if let Some(from) = &s.resumed_from {
        eprintln!("resumed from {}", from.display());
    }
    if s.stopped {
        let resume = a.resume_command("sft", &s.run_dir);
        stop.exit_stopped(s.steps, s.checkpoint.as_deref(), &resume);
    }
    match &s.last {
        Some(m) => println!(
            "{} steps in {}: loss {:.4}, grad norm {:.3}",
            s.steps,
            s.run_dir.display(),
            m.loss,
            m.grad_norm
        ),
        None => println!("{} steps already done in {}", s.steps, s.run_dir.display()),
    }
    Ok(())
}
