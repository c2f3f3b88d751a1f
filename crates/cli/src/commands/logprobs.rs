//! `aha logprobs`: per-token log-probabilities of sequences under a checkpoint.
//!
//! Reads the whole input first, so a bad line is reported before any compute; then scores rows
//! in right-padded batches of similar length and writes one line per input line, in input order.

use std::io::Write;
use std::path::{Path, PathBuf};

use aha_model::tokenizer::Tokenizer;
use aha_model::Model;
use aha_train::data::rows::{read_rows as data_rows, Columns};
use aha_train::engine::Prompt;
use anyhow::{bail, Context};
use candle_core::Tensor;

use crate::args::{check_output, open_output, BatchArgs, DeviceArgs};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Input rows (JSONL, or Parquet by extension): {\"ids\": [int, ...]}, {\"text\": \"...\"} (encoded with
the checkpoint's tokenizer, special tokens added as transformers' encode does), or a prompt
(\"prompt\", \"prompt_ids\" or \"messages\") with \"completion_ids\", as `aha sample` writes them: the
sequence is the prompt's ids then the completion's. Blank lines are skipped.
Output lines, in input order: {\"ids\": [...], \"logprobs\": [...]} (and \"prompt_tokens\" for a
prompt + completion row: logprobs[prompt_tokens - 1..] score the completion) with
logprobs[i] = log p(ids[i+1] | ids[..=i]): one fewer than ids, so every row needs 2+ tokens.
Errors name the file and line: bad JSON, neither field, ids outside the vocabulary, a row longer
than max_position_embeddings, a single-token row.")]
pub struct Args {
    /// Checkpoint directory (config.json, model.safetensors or shards, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// JSONL file of sequences to score.
    #[arg(long)]
    input: PathBuf,
    /// Where to write the scored lines (default: stdout).
    #[arg(long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    batch: BatchArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

/// One output line (f32 keeps the shortest round-tripping decimal form).
#[derive(serde::Serialize)]
struct Scored<'a> {
    ids: &'a [u32],
    logprobs: &'a [f32],
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens: Option<usize>,
}

/// One input line, tokenized and checked.
struct Row {
    line: usize,
    /// Tokens of the prompt, for a prompt + completion row.
    prompt_tokens: Option<usize>,
    ids: Vec<u32>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    check_output(args.output.as_deref())?;
    let model = args.device.load_model(&args.model)?;
    let rows = read_rows(&args.input, &args.model, &model)?;
    let (_, mut out) = open_output(args.output.as_deref())?;

    // Score in batches of similar length, then write in input order.
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| rows[i].ids.len());
    let mut scored: Vec<Option<Vec<f32>>> = vec![None; rows.len()];
    for chunk in order.chunks(args.batch.batch_size) {
        let batch: Vec<&Row> = chunk.iter().map(|&i| &rows[i]).collect();
        let lps = score_batch(&model, &batch).with_context(|| {
            format!(
                "scoring {} lines {:?}",
                args.input.display(),
                batch.iter().map(|r| r.line).collect::<Vec<_>>()
            )
        })?;
        for (&i, lp) in chunk.iter().zip(lps) {
            scored[i] = Some(lp);
        }
    }
    for (row, lp) in rows.iter().zip(scored) {
        let line = Scored {
            ids: &row.ids,
            logprobs: &lp.unwrap_or_default(),
            prompt_tokens: row.prompt_tokens,
        };
        let line = serde_json::to_string(&line).context("serialising a result")?;
        writeln!(out, "{line}").context("writing the output")?;
    }
    out.flush().context("writing the output")?;
    eprintln!("scored {} sequences", rows.len());
    Ok(())
}

/// Every non-blank line of `input` as token ids, checked against the model.
fn read_rows(input: &Path, model_dir: &Path, model: &Model) -> anyhow::Result<Vec<Row>> {
    let (lines, _) = data_rows(input, Columns::All)?;
    let cfg = model.config();
    let mut tokenizer: Option<Tokenizer> = None;
    let mut rows = Vec::new();
    for line in lines {
        let n = line.line;
        let at = || format!("{}:{n}", input.display());
        let fields = line.fields;
        let mut prompt_tokens = None;
        let ids = if let Some(ids) = fields.get("ids") {
            parse_ids(ids).with_context(|| format!("{}: field `ids`", at()))?
        } else if let Some(completion) = fields.get("completion_ids") {
            let completion = parse_ids(completion)
                .with_context(|| format!("{}: field `completion_ids`", at()))?;
            let prompt = Prompt::from_row(&fields, "prompt").with_context(at)?;
            let mut ids = prompt
                .to_ids(load_tokenizer(&mut tokenizer, model_dir)?)
                .with_context(at)?;
            prompt_tokens = Some(ids.len());
            ids.extend(completion);
            ids
        } else if let Some(text) = fields.get("text") {
            let text = text
                .as_str()
                .with_context(|| format!("{}: field `text` must be a string", at()))?;
            load_tokenizer(&mut tokenizer, model_dir)?
                .encode(text, true)
                .with_context(|| format!("{}: encoding `text`", at()))?
        } else {
            bail!(
                "{}: expected `ids`, `text`, or a prompt with `completion_ids`",
                at()
            );
        };
        if ids.len() < 2 {
            bail!(
                "{}: {} token(s): a row needs at least 2 tokens, since logprobs[i] scores \
                 ids[i+1] and the first token has no prediction",
                at(),
                ids.len()
            );
        }
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= cfg.vocab_size) {
            bail!(
                "{}: token id {bad} is out of range for vocab_size {}",
                at(),
                cfg.vocab_size
            );
        }
        if ids.len() > cfg.max_position_embeddings {
            bail!(
                "{}: {} tokens exceed the model's max_position_embeddings ({})",
                at(),
                ids.len(),
                cfg.max_position_embeddings
            );
        }
        rows.push(Row {
            line: n,
            prompt_tokens,
            ids,
        });
    }
    Ok(rows)
}

/// The checkpoint's tokenizer, loaded at the first row that needs it (`ids` rows do not).
fn load_tokenizer<'a>(
    slot: &'a mut Option<Tokenizer>,
    model_dir: &Path,
) -> anyhow::Result<&'a Tokenizer> {
    if slot.is_none() {
        let tok = Tokenizer::from_dir(model_dir)
            .with_context(|| format!("loading the tokenizer of {}", model_dir.display()))?;
        *slot = Some(tok);
    }
    slot.as_ref().context("the tokenizer was just loaded")
}

fn parse_ids(v: &serde_json::Value) -> anyhow::Result<Vec<u32>> {
    let items = v.as_array().context("expected a list of token ids")?;
    items
        .iter()
        .map(|x| {
            x.as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .with_context(|| format!("expected a non-negative integer token id, got {x}"))
        })
        .collect()
}

/// Right-pad the rows into (N, T), run the model, cut each row back to its length - 1.
fn score_batch(model: &Model, rows: &[&Row]) -> anyhow::Result<Vec<Vec<f32>>> {
    let t = rows.iter().map(|r| r.ids.len()).max().unwrap_or(0);
    let pad = model.config().pad_token_id.unwrap_or(0);
    let flat: Vec<u32> = rows
        .iter()
        .flat_map(|r| {
            r.ids
                .iter()
                .copied()
                .chain(std::iter::repeat_n(pad, t - r.ids.len()))
        })
        .collect();
    let ids = Tensor::from_vec(flat, (rows.len(), t), model.device())?;
    let lp: Vec<Vec<f32>> = model.token_logprobs(&ids)?.to_vec2()?; // (N, T-1)
    Ok(lp
        .into_iter()
        .zip(rows)
        .map(|(mut row, r)| {
            row.truncate(r.ids.len() - 1);
            row
        })
        .collect())
}
