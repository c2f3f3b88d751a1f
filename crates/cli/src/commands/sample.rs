//! `aha sample`: K completions of every prompt in a JSONL or Parquet file, one output line per
//! completion that carries the input row's fields, so `aha reward`, `aha logprobs` and `aha sft`
//! read it as it is.
//!
//! The whole input is read, tokenized and checked first (form, empty prompts, length against the
//! model's context, chat-template errors), so a bad line fails before any compute. Prompts are
//! then generated in batches of `--batch-size` with the rollout engine; a completion's random
//! stream depends only on (seed, prompt index, sample index), so the batch size does not change
//! the output. Lines are written as each batch finishes.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::args::{check_output, open_output, BatchArgs, DeviceArgs, SamplingArgs, TemplateArgs};
use aha_model::tokenizer::Tokenizer;
use aha_model::ModelConfig;
use aha_train::data::rows::{read_rows, Columns};
use aha_train::data::{Item, PromptTemplate};
use aha_train::engine::{
    generate_groups_from, FinishReason, Group, Prompt, SamplingParams, StopMatcher,
};
use aha_train::reward::VerifierText;
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};

#[derive(clap::Args, Debug)]
#[command(mut_arg("max_new_tokens", |a| a.default_value("256")))]
#[command(mut_arg("template", |a| a.default_value("raw")))]
#[command(after_help = "\
Input rows (JSONL, or Parquet by extension): {\"prompt\": \"text\"} (or --prompt-field; wrapped by
--template), {\"prompt_ids\": [1, 2, 3]} or {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}]}
(rendered with the checkpoint's chat template and its generation prompt).
Output lines, one per completion, prompt by prompt: the input row's fields (an answer, an id;
`prompt` becomes the text the model saw) and {\"prompt_index\", \"sample_index\",
\"completion_ids\", \"completion\", \"logprobs\", \"finish_reason\": \"stop\"|\"length\"}.
`completion` keeps every token but EOS and padding, as the verifiers see it.
logprobs[i] is log p(completion_ids[i]) under softmax(logits / temperature) over the full
vocabulary (temperature 1 when greedy), before top-k/top-p truncation.")]
pub struct Args {
    /// Checkpoint directory (config.json, *.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// Prompts: JSONL, or Parquet (`.parquet`).
    #[arg(long)]
    input: PathBuf,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    template: TemplateArgs,
    /// Field holding the prompt text (`prompt_ids` and `messages` are always accepted too).
    #[arg(long, default_value = "prompt")]
    prompt_field: String,
    #[command(flatten)]
    batch: BatchArgs,
    #[command(flatten)]
    device: DeviceArgs,
    /// Don't end completions at the checkpoint's EOS tokens.
    #[arg(long)]
    ignore_eos: bool,
    /// Where to write the completions (default: stdout).
    #[arg(long)]
    output: Option<PathBuf>,
}

/// One output line.
#[derive(serde::Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    row: &'a Map<String, Value>,
    prompt_index: usize,
    sample_index: usize,
    completion_ids: &'a [u32],
    completion: String,
    logprobs: &'a [f32],
    finish_reason: FinishReason,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    check_output(args.output.as_deref())?;
    let tokenizer = Tokenizer::from_dir(&args.model)
        .with_context(|| format!("loading the tokenizer of {}", args.model.display()))?;
    let sa = &args.sampling;
    let mut params = sampling_params(sa)?;
    let model = args.device.load_model(&args.model)?;
    if !args.ignore_eos {
        params.eos_token_ids = eos_token_ids(&tokenizer, model.config());
    }
    let cfg = model.config();
    let source = Source {
        path: &args.input,
        prompt_field: &args.prompt_field,
        template: &args.template.template,
    };
    let (prompts, rows) = read_prompts(
        &source,
        &tokenizer,
        cfg.vocab_size,
        cfg.max_position_embeddings,
        sa.max_new_tokens,
    )?
    .into_iter()
    .unzip::<_, _, Vec<_>, Vec<_>>();
    let stop = if sa.stop.is_empty() {
        None
    } else {
        Some(StopMatcher::new(&tokenizer, &sa.stop)?)
    };
    let (k, batch_size) = (sa.k, args.batch.batch_size);
    let (out_name, out) = open_output(args.output.as_deref())?;
    let mut out = LineWriter {
        out,
        name: out_name,
        text: VerifierText::new(&tokenizer, model.config()),
        written: 0,
        flushed: 0,
        tokens: 0,
        stopped: 0,
    };
    let bar = ProgressBar::new((prompts.len() * k) as u64).with_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} completions, {per_sec} ({eta} left)",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    for (b, batch) in prompts.chunks(batch_size).enumerate() {
        let first = b * batch_size;
        let groups = generate_groups_from(&model, batch, first, k, &params, stop.as_ref())
            .with_context(|| {
                format!(
                    "generating prompts {first}..{} ({} lines written before)",
                    first + batch.len(),
                    out.flushed
                )
            })?;
        for group in &groups {
            out.write_group(group, &rows[group.prompt_index])?;
        }
        out.flush()?;
        bar.inc((batch.len() * k) as u64);
    }
    bar.finish_and_clear();
    eprintln!(
        "sampled {} completions of {} prompts: {} tokens in {:.1} s, {} ended by EOS/stop, {} by \
         length",
        out.written,
        prompts.len(),
        out.tokens,
        bar.elapsed().as_secs_f64(),
        out.stopped,
        out.written - out.stopped
    );
    Ok(())
}

/// The engine's sampling parameters from the command line (no EOS ids yet).
fn sampling_params(sa: &SamplingArgs) -> anyhow::Result<SamplingParams> {
    let params = SamplingParams {
        temperature: sa.temperature,
        top_p: sa.top_p,
        top_k: sa.top_k,
        max_new_tokens: sa.max_new_tokens,
        stop_strings: sa.stop.clone(),
        eos_token_ids: Vec::new(),
        seed: sa.seed,
        max_cache_bytes: None,
    };
    params.validate().context("checking the sampling options")?;
    Ok(params)
}

/// The tokenizer's EOS ids and config.json's, sorted, without duplicates.
fn eos_token_ids(tokenizer: &Tokenizer, cfg: &ModelConfig) -> Vec<u32> {
    let mut ids = tokenizer.eos_token_ids();
    ids.extend(&cfg.eos_token_ids);
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The output: one JSON line per completion, counted.
struct LineWriter<'a> {
    out: BufWriter<Box<dyn Write>>,
    name: String,
    text: VerifierText<'a>,
    written: usize,
    /// Lines known to be in the output: counted at each successful flush.
    flushed: usize,
    tokens: usize,
    stopped: usize,
}

impl LineWriter<'_> {
    /// One line per completion of `group`, carrying `row`'s fields.
    fn write_group(&mut self, group: &Group, row: &Row) -> anyhow::Result<()> {
        for c in &group.completions {
            let text = self.text.decode(&c.ids).context("decoding a completion")?;
            let line = Line {
                row,
                prompt_index: group.prompt_index,
                sample_index: c.sample_index,
                completion_ids: &c.ids,
                completion: text,
                logprobs: &c.logprobs,
                finish_reason: c.finish_reason,
            };
            serde_json::to_writer(&mut self.out, &line)
                .map_err(io::Error::from)
                .and_then(|()| self.out.write_all(b"\n"))
                .with_context(|| write_failed(&self.name, self.flushed))?;
            self.written += 1;
            self.tokens += c.ids.len();
            self.stopped += usize::from(c.finish_reason == FinishReason::Stop);
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.out
            .flush()
            .with_context(|| write_failed(&self.name, self.flushed))?;
        self.flushed = self.written;
        Ok(())
    }
}

fn write_failed(out: &str, flushed: usize) -> String {
    format!("writing to {out} failed; its first {flushed} lines are complete")
}

/// Where prompts come from and how their text is read.
struct Source<'a> {
    path: &'a Path,
    prompt_field: &'a str,
    template: &'a PromptTemplate,
}

/// An input row's fields, carried into its output lines.
type Row = Map<String, Value>;

/// Fields the output line writes itself; an input row's own copies are dropped.
const OUTPUT_FIELDS: [&str; 6] = [
    "prompt_index",
    "sample_index",
    "completion_ids",
    "completion",
    "logprobs",
    "finish_reason",
];

/// Read, tokenize and check every prompt before anything is generated: each prompt's ids and the
/// row its output lines carry.
fn read_prompts(
    src: &Source<'_>,
    tokenizer: &Tokenizer,
    vocab: usize,
    context: usize,
    max_new_tokens: usize,
) -> anyhow::Result<Vec<(Vec<u32>, Row)>> {
    let path = src.path;
    let limit = context.checked_sub(max_new_tokens).filter(|&l| l > 0);
    let Some(limit) = limit else {
        bail!(
            "--max-new-tokens {max_new_tokens} leaves no room for a prompt in the model's context \
             of {context} tokens (max_position_embeddings)"
        );
    };
    let (rows, _) = read_rows(path, Columns::All)?;
    let mut prompts = Vec::with_capacity(rows.len());
    for row in rows {
        let at = || format!("{}:{}", path.display(), row.line);
        let mut fields = row.fields;
        let prompt = Prompt::from_row(&fields, src.prompt_field).with_context(at)?;
        let ids = match prompt {
            Prompt::Text(problem) if problem.is_empty() => Vec::new(),
            Prompt::Text(problem) => {
                let item = Item::new(problem, None, None, None);
                let text = src.template.render(&item, tokenizer).with_context(at)?;
                fields.insert("prompt".into(), Value::String(text));
                src.template.encode(&item, tokenizer).with_context(at)?
            }
            other => other.to_ids(tokenizer).with_context(at)?,
        };
        if ids.is_empty() {
            bail!("{}: the prompt is empty (no tokens)", at());
        }
        if ids.len() > limit {
            bail!(
                "{}: the prompt has {} tokens; with --max-new-tokens {max_new_tokens} the model's \
                 context of {context} allows at most {limit}",
                at(),
                ids.len()
            );
        }
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= vocab) {
            bail!(
                "{}: field `prompt_ids`: token id {bad} is out of range for the model's vocabulary of {vocab}",
                at()
            );
        }
        for f in OUTPUT_FIELDS {
            fields.remove(f);
        }
        prompts.push((ids, fields));
    }
    if prompts.is_empty() {
        bail!("{}: no prompts", path.display());
    }
    Ok(prompts)
}
