//! `aha train`: a GRPO run from a TOML config.

use std::sync::Arc;

use aha_train::collective::Collective;
use aha_train::run::train;

use super::run_args::RunArgs;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// See configs/smoke.toml and configs/r1_zero.toml.
    #[command(flatten)]
    pub run: RunArgs,
}

/// One rank of the job `world` (one process unless started by mpirun or srun).
pub fn run(args: Args, world: Arc<dyn Collective>) -> anyhow::Result<()> {
    let a = &args.run;
    let Some((s, stop)) = a.run(&world, train)? else {
        return Ok(());
    };
    if let Some(from) = &s.resumed_from {
        eprintln!("resumed from {}", from.display());
    }
    if s.skipped_rows > 0 {
        eprintln!("skipped {} dataset rows without an answer", s.skipped_rows);
    }
    if s.stopped {
        let resume = a.resume_command("train", &s.run_dir);
        stop.exit_stopped(s.steps, s.checkpoint.as_deref(), &resume);
    }
    match &s.last {
        Some(m) => println!(
            "{} steps in {}: reward {:.3}, accuracy {:.3}, format {:.3}, length {:.1}",
            s.steps,
            s.run_dir.display(),
            m.reward_mean,
            m.accuracy,
            m.format_rate,
            m.completion_len_mean
        ),
        None => println!("{} steps already done in {}", s.steps, s.run_dir.display()),
    }
    Ok(())
}
