//! `aha eval`: pass@1 over K samples, unbiased pass@k, maj@K and lengths for a model on a
//! JSONL problem set. Prints the summary as JSON; `--output` writes one line per problem.

use std::io::Write;
use std::path::PathBuf;

use aha_train::data::{read_items, Fields, MissingAnswer, PromptTemplate};
use aha_train::eval::{evaluate, EvalConfig};
use aha_verify::Task;
use anyhow::Context;
use candle_core::Device;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Checkpoint directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Verifier task: math, countdown, arithmetic or format.
    #[arg(long)]
    pub task: String,
    /// Problems, one JSON object per line with `prompt` and `answer` (Countdown: `numbers`
    /// and `target`), or a Parquet file (`.parquet`) with those columns.
    #[arg(long)]
    pub input: PathBuf,
    /// Samples per problem.
    #[arg(long, default_value_t = 1)]
    pub k: usize,
    /// Sampling temperature (R1 evaluates at 0.6; 0 is greedy).
    #[arg(long, default_value_t = 0.6)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    #[arg(long, default_value_t = 512)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Prompt template: r1_zero, chat, raw, or a format string containing {prompt}.
    #[arg(long, default_value = "r1_zero")]
    pub template: String,
    /// Text that ends a completion (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// Field names in the input.
    #[arg(long, default_value = "prompt")]
    pub prompt_field: String,
    #[arg(long, default_value = "answer")]
    pub answer_field: String,
    /// Problems per generation batch (memory grows with this × k).
    #[arg(long, default_value_t = 16)]
    pub prompts_per_batch: usize,
    /// Write one JSON line per problem (completions, verdicts, majority answer) here.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

pub(super) fn template(s: &str) -> anyhow::Result<PromptTemplate> {
    Ok(match s {
        "r1_zero" => PromptTemplate::R1Zero,
        "chat" => PromptTemplate::Chat,
        "raw" => PromptTemplate::Raw,
        f if f.contains("{prompt}") => PromptTemplate::Format { format: f.into() },
        other => anyhow::bail!(
            "--template `{other}`: expected r1_zero, chat, raw or a format string with {{prompt}}"
        ),
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let task: Task = args.task.parse().context("--task")?;
    let cfg = EvalConfig {
        k: args.k,
        temperature: args.temperature,
        top_p: args.top_p,
        max_new_tokens: args.max_new_tokens,
        seed: args.seed,
        template: template(&args.template)?,
        stop_strings: args.stop,
        prompts_per_batch: args.prompts_per_batch,
    };
    let fields = Fields {
        prompt: args.prompt_field,
        answer: args.answer_field,
        ..Fields::default()
    };
    let (items, _) = read_items(&args.input, &fields, MissingAnswer::Error)?;
    let model = aha_model::load::load_model(&args.model, &Device::Cpu, false)
        .with_context(|| format!("loading model {}", args.model.display()))?;
    let tokenizer = aha_model::tokenizer::Tokenizer::from_dir(&args.model)?;
    let (summary, results) = evaluate(&model, &tokenizer, &items, task, &cfg)?;
    if let Some(path) = &args.output {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        for r in &results {
            writeln!(out, "{}", serde_json::to_string(r)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        out.flush()?;
    }
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
