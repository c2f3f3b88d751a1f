//! `aha rejection-sample`: K completions per problem, judged by the task's verifiers; the correct
//! ones become SFT data that `aha sft` reads (DeepSeek-R1's step between reasoning RL and the next
//! SFT round). The library side is `aha_train::rejection`; this file reads the problems (JSONL or
//! Parquet), writes the kept lines as each batch finishes, and prints the counts as JSON.

use std::io::Write;
use std::path::PathBuf;

use aha_train::data::{read_items, Fields, MissingAnswer};
use aha_train::eval::EvalConfig;
use aha_train::rejection::{rejection_sample, RejectionConfig};
use aha_verify::Task;
use anyhow::Context;
use candle_core::Device;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Output lines: {\"prompt\": <the rendered prompt>, \"completion\", \"reward\"}, or with --template
chat {\"messages\": [user turn, assistant turn], \"reward\"}; point an SFT config's `data` at the
file. A completion is kept when it is correct, well-formed where the task has a format rule
(math, countdown; see --ignore-format), ended by EOS or a stop string rather than the length
limit, and not a repeat of one already kept for its problem.")]
pub struct Args {
    /// Checkpoint directory (config.json, *.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// Verifier task: math, countdown, arithmetic or format.
    #[arg(long)]
    task: String,
    /// Problems: JSONL, or Parquet (`.parquet`), with a prompt and an answer (Countdown: numbers
    /// and target) per row.
    #[arg(long)]
    input: PathBuf,
    /// Completions sampled per problem.
    #[arg(long)]
    k: usize,
    /// Where the SFT JSONL goes.
    #[arg(long)]
    output: PathBuf,
    #[arg(long, default_value_t = 0.6)]
    temperature: f32,
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    #[arg(long, default_value_t = 512)]
    max_new_tokens: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Most completions kept per problem (default: every distinct correct one).
    #[arg(long)]
    keep_per_prompt: Option<usize>,
    /// Prompt template: r1_zero, chat, raw, or a format string containing {prompt}.
    #[arg(long, default_value = "r1_zero")]
    template: String,
    /// Text that ends a completion (repeatable).
    #[arg(long = "stop")]
    stop: Vec<String>,
    /// Keep correct completions even when they break the task's format rule.
    #[arg(long)]
    ignore_format: bool,
    /// Field (column) names in the input.
    #[arg(long, default_value = "prompt")]
    prompt_field: String,
    #[arg(long, default_value = "answer")]
    answer_field: String,
    #[arg(long, default_value = "numbers")]
    numbers_field: String,
    #[arg(long, default_value = "target")]
    target_field: String,
    /// Problems per generation batch (memory grows with this × k).
    #[arg(long, default_value_t = 16)]
    prompts_per_batch: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let task: Task = args.task.parse().context("--task")?;
    let cfg = RejectionConfig {
        sampling: EvalConfig {
            k: args.k,
            temperature: args.temperature,
            top_p: args.top_p,
            max_new_tokens: args.max_new_tokens,
            seed: args.seed,
            template: super::eval::template(&args.template)?,
            stop_strings: args.stop,
            prompts_per_batch: args.prompts_per_batch,
        },
        keep_per_prompt: args.keep_per_prompt,
        require_format: !args.ignore_format,
    };
    let fields = Fields {
        prompt: args.prompt_field,
        answer: args.answer_field,
        numbers: args.numbers_field,
        target: args.target_field,
    };
    let (items, _) = read_items(&args.input, &fields, MissingAnswer::Error)?;
    let model = aha_model::load::load_model(&args.model, &Device::Cpu, false)
        .with_context(|| format!("loading model {}", args.model.display()))?;
    let tokenizer = aha_model::tokenizer::Tokenizer::from_dir(&args.model)?;

    let path = &args.output;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let bar = ProgressBar::new(items.len() as u64).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} problems ({eta})")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    let mut written = 0usize;
    let summary = rejection_sample(
        &model,
        &tokenizer,
        &items,
        &task.reward(),
        &cfg,
        |records| {
            let write = |out: &mut std::io::BufWriter<_>| -> std::io::Result<()> {
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
        },
    )
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
