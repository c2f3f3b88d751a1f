//! `aha eval`: pass@1 over K samples, unbiased pass@k, maj@K and lengths for a model on a
//! JSONL or Parquet problem set. Prints the summary as JSON; `--output` writes one line per
//! problem.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use aha_train::collective::Collective;
use aha_train::data::Needs;
use aha_train::eval::evaluate_on;
use anyhow::Context;

use crate::args::{
    check_output, eval_config, open_output, problems_and_model, BatchArgs, DeviceArgs, FieldArgs,
    SamplingArgs, TemplateArgs, VerifierArgs,
};

#[derive(clap::Args, Debug)]
#[command(mut_arg("temperature", |a| a.default_value("0.6")))]
#[command(mut_arg("top_p", |a| a.default_value("0.95")))]
#[command(mut_arg("batch_size", |a| a.default_value("16")))]
pub struct Args {
    /// Checkpoint directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub verifier: VerifierArgs,
    /// Problems, one JSON object per line with a prompt (`prompt` text, `prompt_ids` or
    /// `messages`, as `aha sample` reads them) and `answer` (Countdown: `numbers` and `target`),
    /// or a Parquet file (`.parquet`) with those columns.
    #[arg(long)]
    pub input: PathBuf,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub template: TemplateArgs,
    #[command(flatten)]
    pub fields: FieldArgs,
    #[command(flatten)]
    pub batch: BatchArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Write one JSON line per problem (completions, verdicts, majority answer) here.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Under mpirun each rank evaluates a share of the problems; rank 0 prints and writes.
pub fn run(args: Args, world: Arc<dyn Collective>) -> anyhow::Result<()> {
    if world.rank() == 0 {
        check_output(args.output.as_deref())?;
    }
    let cfg = eval_config(args.sampling, &args.template, &args.verifier, &args.batch);
    let needs = Needs::of(&cfg.reward());
    let (items, model, tokenizer) =
        problems_and_model(&args.input, &args.fields, needs, &args.model, &args.device)?;
    let Some((summary, results)) = evaluate_on(&model, &tokenizer, &items, &cfg, &*world)? else {
        return Ok(());
    };
    if let Some(path) = &args.output {
        let (name, mut out) = open_output(Some(path))?;
        for r in &results {
            writeln!(out, "{}", serde_json::to_string(r)?)
                .with_context(|| format!("writing {name}"))?;
        }
        out.flush().with_context(|| format!("writing {name}"))?;
    }
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
