//! One module per subcommand; each has an `Args` (clap) and a `run`.

use std::sync::Arc;

use aha_train::collective::Collective;
use clap::{Parser, Subcommand};

mod bench;
mod demo;
mod eval;
mod init;
mod logprobs;
mod rejection_sample;
mod reward;
mod run_args;
mod sample;
mod sft;
mod train;

#[derive(Parser)]
#[command(
    name = "aha",
    version,
    about = "Train language models to reason with RL from verifiable rewards (the DeepSeek-R1 recipe).",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole R1-Zero recipe in miniature on CPU: pretrain a tiny base model, run GRPO, report.
    Demo(demo::Args),
    /// GRPO (and its variants: Dr. GRPO, DAPO) from a TOML config.
    Train(train::Args),
    /// Supervised fine-tuning: cold start, rejection-sampled data, distillation.
    Sft(sft::Args),
    /// Sample G completions per prompt (rollouts), one JSONL line per completion.
    Sample(sample::Args),
    /// Per-token log-probabilities of sequences under a model.
    Logprobs(logprobs::Args),
    /// Score completions with rule-based verifiers.
    Reward(reward::Args),
    /// Sample K completions per problem and keep the verified-correct ones as SFT data.
    RejectionSample(rejection_sample::Args),
    /// Evaluate a model: pass@1 over K samples, pass@K, maj@K, lengths.
    Eval(eval::Args),
    /// Write a random-initialised Hugging Face checkpoint with a tokenizer.
    Init(init::Args),
    /// Tokens/s of the training step and of generation on reference shapes.
    Bench(bench::Args),
}

/// Runs one command as a rank of `world` (one process unless started by an MPI launcher).
/// train, sft, eval and rejection-sample split their work over the ranks; the others run as
/// one process only.
pub fn run(cli: Cli, world: Arc<dyn Collective>) -> anyhow::Result<()> {
    let single = |name: &str| -> anyhow::Result<()> {
        if world.size() > 1 {
            anyhow::bail!(
                "`aha {name}` runs as one process; start it without mpirun/srun (train, sft, \
                 eval and rejection-sample run data-parallel)"
            );
        }
        Ok(())
    };
    match cli.command {
        Command::Train(a) => train::run(a, world),
        Command::Sft(a) => sft::run(a, world),
        Command::RejectionSample(a) => rejection_sample::run(a, world),
        Command::Eval(a) => eval::run(a, world),
        Command::Demo(a) => single("demo").and_then(|_| demo::run(a)),
        Command::Sample(a) => single("sample").and_then(|_| sample::run(a)),
        Command::Logprobs(a) => single("logprobs").and_then(|_| logprobs::run(a)),
        Command::Reward(a) => single("reward").and_then(|_| reward::run(a)),
        Command::Init(a) => single("init").and_then(|_| init::run(a)),
        Command::Bench(a) => single("bench").and_then(|_| bench::run(a)),
    }
}
