//! One module per subcommand; each has an `Args` (clap) and a `run`.

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

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(a) => demo::run(a),
        Command::Train(a) => train::run(a),
        Command::Sft(a) => sft::run(a),
        Command::Sample(a) => sample::run(a),
        Command::Logprobs(a) => logprobs::run(a),
        Command::Reward(a) => reward::run(a),
        Command::RejectionSample(a) => rejection_sample::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Init(a) => init::run(a),
        Command::Bench(a) => bench::run(a),
    }
}
