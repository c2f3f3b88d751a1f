//! `aha train`: a GRPO run from a TOML config.

use std::path::PathBuf;

use aha_train::config::TrainConfig;
use aha_train::run::{train, RunOptions};
use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run config (TOML). See configs/smoke.toml and configs/r1_zero.toml.
    pub config: PathBuf,
    /// Override a config value: `--set steps=100 --set grpo.beta=0.04`. Values are typed by the
    /// field they replace; repeat for several.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Where the run's files go (default: runs/NAME).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Continue from the newest complete checkpoint in the run directory.
    #[arg(long)]
    pub resume: bool,
    /// Print the resolved config (every default written out) and exit.
    #[arg(long)]
    pub show_config: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = TrainConfig::load(&args.config, &args.set)
        .with_context(|| format!("reading config {}", args.config.display()))?;
    if args.show_config {
        print!("{}", cfg.to_toml()?);
        return Ok(());
    }
    let progress = cfg.output.progress;
    let opts = RunOptions {
        run_dir: args.run_dir,
        resume: args.resume,
    };
    let s = train(cfg, opts, progress)?;
    if let Some(from) = &s.resumed_from {
        eprintln!("resumed from {}", from.display());
    }
    if s.skipped_rows > 0 {
        eprintln!("skipped {} dataset rows without an answer", s.skipped_rows);
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
