//! `aha rejection-sample`: K completions per problem, judged by the task's verifiers; the correct
//! ones become SFT data that `aha sft` reads (DeepSeek-R1's step between reasoning RL and the next
//! SFT round). The library side is `aha_train::rejection`; this file reads the problems (JSONL or
//! Parquet), writes the kept lines as each batch finishes, and prints the counts as JSON.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aha_train::collective::{gather_json, shard, Collective};
use aha_train::data::Needs;
use aha_train::rejection::{
    rejection_sample, rejection_sample_range, RejectionConfig, RejectionSummary, SftRecord,
};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{
    check_output, eval_config, open_output, problems_and_model, BatchArgs, DeviceArgs, FieldArgs,
    SamplingArgs, TemplateArgs, VerifierArgs,
};

#[derive(clap::Args, Debug)]
#[command(mut_arg("temperature", |a| a.default_value("0.6")))]
#[command(mut_arg("top_p", |a| a.default_value("0.95")))]
#[command(mut_arg("batch_size", |a| a.default_value("16")))]
#[command(after_help = "\
Output lines: {\"prompt\": <the rendered prompt>, \"completion\", \"reward\"}, or with --template
chat {\"messages\": [user turn, assistant turn], \"reward\"}; a `messages` problem gets its turns
and the assistant's, a `prompt_ids` problem {\"prompt_ids\", \"completion\", \"reward\"}. Point an
SFT config's `data` at the file. A completion is kept when it is correct, well-formed where the task has a format rule
(math, countdown; see --ignore-format), ended by EOS or a stop string rather than the length
limit, and not a repeat of one already kept for its problem.")]
pub struct Args {
    /// Checkpoint directory (config.json, *.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    verifier: VerifierArgs,
    /// Problems: JSONL, or Parquet (`.parquet`), with a prompt (`prompt` text, `prompt_ids` or
    /// `messages`, as `aha sample` reads them) and an answer (Countdown: numbers and target) per
    /// row.
    #[arg(long)]
    input: PathBuf,
    /// Where the SFT JSONL goes.
    #[arg(long)]
    output: PathBuf,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Most completions kept per problem (default: every distinct correct one).
    #[arg(long)]
    keep_per_prompt: Option<usize>,
    #[command(flatten)]
    template: TemplateArgs,
    /// Keep correct completions even when they break the task's format rule.
    #[arg(long)]
    ignore_format: bool,
    #[command(flatten)]
    fields: FieldArgs,
    #[command(flatten)]
    batch: BatchArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Under mpirun each rank samples a share of the problems; rank 0 writes every kept line.
pub fn run(args: Args, world: Arc<dyn Collective>) -> anyhow::Result<()> {
    if world.rank() == 0 {
        check_output(Some(&args.output))?;
    }
    let cfg = RejectionConfig {
        sampling: eval_config(args.sampling, &args.template, &args.verifier, &args.batch),
        keep_per_prompt: args.keep_per_prompt,
        require_format: !args.ignore_format,
    };
    let needs = Needs::of(&cfg.sampling.reward());
    let (items, model, tokenizer) =
        problems_and_model(&args.input, &args.fields, needs, &args.model, &args.device)?;
    let path = &args.output;
    if world.size() > 1 {
        let range = shard(items.len(), world.rank(), world.size());
        let mut kept: Vec<SftRecord> = Vec::new();
        let mine = rejection_sample_range(&model, &tokenizer, &items, range, &cfg, |records| {
            kept.extend_from_slice(records);
            Ok(())
        })?;
        return write_gathered(&*world, path, (kept, mine));
    }
    let (_, mut out) = open_output(Some(path))?;

    let bar = ProgressBar::new(items.len() as u64).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} problems ({eta})")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    let mut written = 0usize;
    let summary = rejection_sample(&model, &tokenizer, &items, &cfg, |records| {
        let write = |out: &mut std::io::BufWriter<Box<dyn Write>>| -> std::io::Result<()> {
            for r in records {
                serde_json::to_writer(&mut *out, r)?;
                out.write_all(b"\n")?;
            }
            out.flush()
        };
        write(&mut out).map_err(|e| aha_train::Error::io(path, e))?;
        written += records.len();
        bar.inc(cfg.sampling.prompts_per_batch as u64);
        Ok(())
    })
    .with_context(|| {
        format!(
            "rejection sampling stopped; the first {written} lines of {} are complete",
            path.display()
        )
    })?;
    bar.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// Data-parallel rejection sampling: rank 0 writes every rank's kept lines in input order and
/// prints the summed counts (each rank holds its share's lines until the end).
fn write_gathered(
    world: &dyn Collective,
    path: &Path,
    mine: (Vec<SftRecord>, RejectionSummary),
) -> anyhow::Result<()> {
    let Some(parts) = gather_json(world, &mine)? else {
        return Ok(());
    };
    let (name, mut out) = open_output(Some(path))?;
    let mut summary = RejectionSummary::default();
    for (records, counts) in &parts {
        for r in records {
            serde_json::to_writer(&mut out, r)?;
            out.write_all(b"\n")
                .with_context(|| format!("writing {name}"))?;
        }
        summary.add(counts);
    }
    out.flush().with_context(|| format!("writing {name}"))?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
