//! `aha sample`: G completions of every prompt in a JSONL file, one output line per completion.
//!
//! The whole input is read, tokenized and checked first (form, empty prompts, length against the
//! model's context, chat-template errors), so a bad line fails before any compute. Prompts are
//! then generated in batches of `--batch-prompts` with the rollout engine; a completion's random
//! stream depends only on (seed, prompt index, sample index), so the batch size does not change
//! the output. Lines are written as each batch finishes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use aha_model::load::load_model;
use aha_model::tokenizer::Tokenizer;
use aha_train::engine::{generate_groups_from, FinishReason, Prompt, SamplingParams, StopMatcher};
use anyhow::{bail, Context};
use crate::args::{open_output, BatchArgs, DeviceArgs, SamplingArgs};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Args, Debug)]
#[command(mut_arg("max_new_tokens", |a| a.default_value("256")))]
#[command(after_help = "\
Input lines: {\"prompt\": \"text\"}, {\"prompt_ids\": [1, 2, 3]} or
{\"messages\": [{\"role\": \"user\", \"content\": \"...\"}]} (rendered with the checkpoint's chat
template and its generation prompt). Other fields are ignored.
Output lines, one per completion, prompt by prompt: {\"prompt_index\", \"sample_index\",
\"completion_ids\", \"completion\", \"logprobs\", \"finish_reason\": \"stop\"|\"length\"}.
logprobs[i] is log p(completion_ids[i]) under softmax(logits / temperature) over the full
vocabulary (temperature 1 when greedy), before top-k/top-p truncation.")]
pub struct Args {
    /// Checkpoint directory (config.json, *.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// JSONL file of prompts.
    #[arg(long)]
    input: PathBuf,
    #[command(flatten)]
    sampling: SamplingArgs,
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
    prompt_index: usize,
    sample_index: usize,
    completion_ids: &'a [u32],
    completion: String,
    logprobs: &'a [f32],
    finish_reason: FinishReason,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (out_name, out) = open_output(args.output.as_deref())?;
    let device = args.device.device()?;
    let tokenizer = Tokenizer::from_dir(&args.model)
        .with_context(|| format!("loading the tokenizer of {}", args.model.display()))?;
    let sa = &args.sampling;
    let mut params = SamplingParams {
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
    let model = load_model(&args.model, &device, false)
        .with_context(|| format!("loading the model in {}", args.model.display()))?;
    if !args.ignore_eos {
        params.eos_token_ids = tokenizer.eos_token_ids();
        params.eos_token_ids.extend(&model.config().eos_token_ids);
        params.eos_token_ids.sort_unstable();
        params.eos_token_ids.dedup();
    }
    let cfg = model.config();
    let prompts = read_prompts(
        &args.input,
        &tokenizer,
        cfg.vocab_size,
        cfg.max_position_embeddings,
        sa.max_new_tokens,
    )?;
    let stop = if sa.stop.is_empty() {
        None
    } else {
        Some(StopMatcher::new(&tokenizer, &sa.stop)?)
    };
    let (k, batch_size) = (sa.k, args.batch.batch_size);
    let mut out = out;
    let bar = ProgressBar::new((prompts.len() * k) as u64).with_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} completions, {per_sec} ({eta} left)",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    // Lines known to be in the output: counted at each successful flush.
    let (mut written, mut flushed) = (0usize, 0usize);
    let (mut tokens, mut stopped) = (0usize, 0usize);
    for (b, batch) in prompts.chunks(batch_size).enumerate() {
        let first = b * batch_size;
        let groups = generate_groups_from(&model, batch, first, k, &params, stop.as_ref())
            .with_context(|| {
                format!(
                    "generating prompts {first}..{} ({flushed} lines written before)",
                    first + batch.len()
                )
            })?;
        for group in &groups {
            for c in &group.completions {
                let text = tokenizer
                    .inner()
                    .decode(&c.ids, true)
                    .map_err(|e| anyhow::anyhow!("decoding a completion: {e}"))?;
                let line = Line {
                    prompt_index: group.prompt_index,
                    sample_index: c.sample_index,
                    completion_ids: &c.ids,
                    completion: text,
                    logprobs: &c.logprobs,
                    finish_reason: c.finish_reason,
                };
                serde_json::to_writer(&mut out, &line)
                    .map_err(io::Error::from)
                    .and_then(|()| out.write_all(b"\n"))
                    .with_context(|| write_failed(&out_name, flushed))?;
                written += 1;
                tokens += c.ids.len();
                stopped += usize::from(c.finish_reason == FinishReason::Stop);
            }
        }
        out.flush()
            .with_context(|| write_failed(&out_name, flushed))?;
        flushed = written;
        bar.inc((batch.len() * k) as u64);
    }
    bar.finish_and_clear();
    eprintln!(
        "sampled {written} completions of {} prompts: {tokens} tokens in {:.1} s, {stopped} ended \
         by EOS/stop, {} by length",
        prompts.len(),
        bar.elapsed().as_secs_f64(),
        written - stopped
    );
    Ok(())
}

fn write_failed(out: &str, flushed: usize) -> String {
    format!("writing to {out} failed; its first {flushed} lines are complete")
}

/// Read, tokenize and check every prompt of `path` before anything is generated.
fn read_prompts(
    path: &Path,
    tokenizer: &Tokenizer,
    vocab: usize,
    context: usize,
    max_new_tokens: usize,
) -> anyhow::Result<Vec<Vec<u32>>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let limit = context.checked_sub(max_new_tokens).filter(|&l| l > 0);
    let Some(limit) = limit else {
        bail!(
            "--max-new-tokens {max_new_tokens} leaves no room for a prompt in the model's context \
             of {context} tokens (max_position_embeddings)"
        );
    };
    let mut prompts = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let at = || format!("{}:{}", path.display(), i + 1);
        let line = line.with_context(|| format!("reading {}", at()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("{}: invalid JSON", at()))?;
        let prompt = Prompt::from_json(&value).with_context(at)?;
        let ids = prompt.to_ids(tokenizer).with_context(at)?;
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
        prompts.push(ids);
    }
    if prompts.is_empty() {
        bail!("{}: no prompts", path.display());
    }
    Ok(prompts)
}
