//! `aha sft`: supervised fine-tuning (cold start, rejection-sampled data, distillation, or
//! pretraining with `sft.loss_on = "all"`) from a TOML config shaped like `aha train`'s.

use std::sync::Arc;

use aha_train::collective::Collective;
use aha_train::sft_run::{run_sft, SftRunConfig};

use super::run_args::RunArgs;

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
    let Some((s, stop)) = a.run(&world, |cfg: SftRunConfig, opts| run_sft(&cfg, opts))? else {
        return Ok(());
    };
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
