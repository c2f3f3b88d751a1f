//! `aha sft`: supervised fine-tuning (cold start, rejection-sampled data, distillation, or
//! pretraining with `sft.loss_on = "all"`) from a TOML config.

use std::path::PathBuf;

use aha_train::sft_run::{run_sft, SftRunConfig};
use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The SFT config (TOML): name, seed, steps, batch_size, data (JSONL of {"prompt",
    /// "completion"} or {"messages"}), [model] path or init, [sft] optim / micro_batch_size /
    /// loss_on, checkpoint_every.
    pub config: PathBuf,
    /// Where metrics and checkpoints go (default: runs/NAME).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = SftRunConfig::load(&args.config)
        .with_context(|| format!("reading config {}", args.config.display()))?;
    let dir = args
        .run_dir
        .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
    match run_sft(&cfg, &dir)? {
        Some(s) => println!(
            "{} steps in {}: loss {:.4}, grad norm {:.3}",
            cfg.steps,
            dir.display(),
            s.loss,
            s.grad_norm
        ),
        None => println!("no steps run"),
    }
    Ok(())
}
