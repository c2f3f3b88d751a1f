//! The decode loop: prefill B prompts once, fork into N = B·G rows, decode until every row ends.
//!
//! Rows live in the KV cache in "live" order; a finished row keeps its slot (and is fed a dummy
//! token) until enough rows have finished to make compacting the cache worth its copy. Sampling
//! and stop checks run per row on the CPU, in parallel across rows (each row owns its RNG, so the
//! thread count cannot change a result).

use aha_model::{KvCache, Model, ModelConfig};
use candle_core::{DType, Tensor};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::sampler::{completion_rng, sample_token};
use super::{Completion, EngineError, FinishReason, Group, SamplingParams, StopMatcher};

/// Compact the cache once this fraction of its rows has finished. Compaction copies the whole
/// cache once; dropping a quarter of the rows pays that back within a few steps. Measured on the
/// reference shape (8 prompts × 64 tokens, G = 16, up to 128 new, completions ending at random,
/// mean length 58): 1.41 s at 0.25, 1.61 s compacting at every finish, 1.72 s at 0.5, 2.4 s never.
const COMPACT_FRACTION: f64 = 0.25;

/// Activation bytes one prefill chunk may use; longer prompts are prefilled in token chunks.
const PREFILL_BYTES: usize = 256 << 20;

/// Sample `g` completions of each prompt; `Group::prompt_index` counts from 0.
///
/// prompts: B token-id sequences (no padding). Returns B groups of `g` completions, in order.
pub fn generate_groups(
    model: &Model,
    prompts: &[Vec<u32>],
    g: usize,
    params: &SamplingParams,
    stop: Option<&StopMatcher>,
) -> Result<Vec<Group>, EngineError> {
    generate_groups_from(model, prompts, 0, g, params, stop)
}

/// [`generate_groups`] for a slice of a larger prompt list that starts at `first_prompt_index`:
/// the index keys each completion's random stream, so splitting a dataset into batches of any
/// size gives the same completions.
pub fn generate_groups_from(
    model: &Model,
    prompts: &[Vec<u32>],
    first_prompt_index: usize,
    g: usize,
    params: &SamplingParams,
    stop: Option<&StopMatcher>,
) -> Result<Vec<Group>, EngineError> {
    params.validate()?;
    if g == 0 {
        return Err(EngineError::Params(
            "completions per prompt (G) must be at least 1".into(),
        ));
    }
    check_stops(params, stop)?;
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    let model = model.detached();
    let cfg = model.config();
    check_prompts(cfg, prompts, first_prompt_index, params.max_new_tokens)?;
    let b = prompts.len();
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    // The last sampled token is never fed back, so it needs no slot.
    let capacity = longest + params.max_new_tokens - 1;
    check_memory(cfg, b, g, capacity, params.max_cache_bytes)?;
    // Prefill and decode on a rayon worker ([`crate::worker`]).
    crate::worker::on_rayon_worker(|| {
        let mut cache = model.new_cache(b, capacity)?;
        let logits = prefill(&model, prompts, &mut cache)?; // (B, V)
        let live: Vec<Row> = (0..b)
            .flat_map(|p| {
                (0..g).map(move |s| Row {
                    prompt: p,
                    sample: s,
                    prompt_len: prompts[p].len(),
                    ids: Vec::with_capacity(params.max_new_tokens),
                    logprobs: Vec::with_capacity(params.max_new_tokens),
                    rng: completion_rng(params.seed, first_prompt_index + p, s),
                    finish: None,
                })
            })
            .collect();
        let mut decoding = Decoding {
            model: &model,
            params,
            stop,
            cache,
            done: Vec::with_capacity(live.len()),
            live,
        };
        decoding.fork(&logits, b)?;
        while !decoding.live.is_empty() {
            decoding.step()?;
        }
        Ok(into_groups(decoding.done, prompts, first_prompt_index, g))
    })
}

/// The rows being decoded, in cache order, and those that have finished.
struct Decoding<'a, 's> {
    model: &'a Model,
    params: &'a SamplingParams,
    stop: Option<&'a StopMatcher<'s>>,
    cache: KvCache,
    live: Vec<Row>,
    done: Vec<Row>,
}

impl Decoding<'_, '_> {
    /// Samples every row's first token from its prompt's prefill logits (B, V): all G rows of a
    /// prompt share the prompt's one prefill. Then forks the cache from B prompt rows into one
    /// row per unfinished completion.
    fn fork(&mut self, logits: &Tensor, b: usize) -> Result<(), EngineError> {
        let v = self.model.config().vocab_size;
        step_rows(&mut self.live, logits, v, self.params, self.stop, |r| {
            r.prompt
        })?;
        let fork: Vec<u32> = (self.live.iter())
            .filter(|r| r.finish.is_none())
            .map(|r| r.prompt as u32)
            .collect();
        let identity = fork.len() == b && fork.iter().enumerate().all(|(i, &p)| p as usize == i);
        if !identity && !fork.is_empty() {
            self.cache = self.cache.select_rows(&fork)?;
        }
        self.retire();
        Ok(())
    }

    /// Feeds every live row its last token and samples the next; compacts the cache once
    /// enough rows have finished.
    fn step(&mut self) -> Result<(), EngineError> {
        let n = self.live.len();
        let device = self.model.device();
        let ids: Vec<u32> = self.live.iter().map(Row::last).collect();
        let pos: Vec<u32> = self.live.iter().map(|r| r.next_position()).collect();
        let logits = self.model.forward_cached(
            &Tensor::from_vec(ids, (n, 1), device)?,
            &Tensor::from_vec(pos, (n, 1), device)?,
            &Tensor::ones((n, 1), DType::F32, device)?,
            &mut self.cache,
        )?;
        let v = self.model.config().vocab_size;
        step_rows(&mut self.live, &logits, v, self.params, self.stop, |r| {
            r.slot
        })?;
        let finished = self.live.iter().filter(|r| r.finish.is_some()).count();
        if finished == n {
            self.done.append(&mut self.live);
        } else if finished as f64 >= COMPACT_FRACTION * n as f64 {
            let keep: Vec<u32> = (0..n as u32)
                .filter(|&i| self.live[i as usize].finish.is_none())
                .collect();
            self.cache = self.cache.select_rows(&keep)?;
            self.retire();
        }
        Ok(())
    }

    /// Moves finished rows to `done`, keeping the live ones in cache order.
    fn retire(&mut self) {
        let (unfinished, finished): (Vec<Row>, Vec<Row>) = std::mem::take(&mut self.live)
            .into_iter()
            .partition(|r| r.finish.is_none());
        self.done.extend(finished);
        self.live = unfinished;
    }
}

/// One completion being decoded.
struct Row {
    /// Index of its prompt in this batch.
    prompt: usize,
    sample: usize,
    prompt_len: usize,
    ids: Vec<u32>,
    logprobs: Vec<f32>,
    rng: ChaCha8Rng,
    finish: Option<FinishReason>,
}

impl Row {
    fn last(&self) -> u32 {
        self.ids.last().copied().unwrap_or(0)
    }

    /// Position of the last sampled token, about to be fed: positions start at 0 on the prompt's
    /// first token whatever the padding.
    fn next_position(&self) -> u32 {
        (self.prompt_len + self.ids.len() - 1) as u32
    }
}

/// Sample one token for every unfinished row and decide whether it ended the row.
/// logits: (M, V); `row_of` picks the logits row of each live row.
fn step_rows(
    live: &mut [Row],
    logits: &Tensor,
    v: usize,
    params: &SamplingParams,
    stop: Option<&StopMatcher>,
    row_of: impl Fn(&RowRef) -> usize + Sync,
) -> Result<(), EngineError> {
    let flat: Vec<f32> = logits.flatten_all()?.to_vec1()?;
    // Group rows so each rayon task works through at least ~32k logits: below that the
    // scheduling costs more than it saves.
    let min_len = (1usize << 15).div_ceil(v).max(1);
    live.par_iter_mut()
        .enumerate()
        .with_min_len(min_len)
        .try_for_each(|(slot, row)| {
            if row.finish.is_some() {
                return Ok(());
            }
            let r = row_of(&RowRef {
                prompt: row.prompt,
                slot,
            });
            let s = sample_token(&flat[r * v..(r + 1) * v], params, &mut row.rng);
            row.ids.push(s.id);
            row.logprobs.push(s.logprob);
            let stopped = params.eos_token_ids.contains(&s.id)
                || match stop {
                    Some(m) => m.is_stopped(&row.ids)?,
                    None => false,
                };
            row.finish = if stopped {
                Some(FinishReason::Stop)
            } else if row.ids.len() >= params.max_new_tokens {
                Some(FinishReason::Length)
            } else {
                None
            };
            Ok(())
        })
}

/// What `step_rows` tells `row_of` about a row.
struct RowRef {
    prompt: usize,
    slot: usize,
}

/// Run the left-padded prompts through the model into `cache`, in token chunks that bound the
/// activation memory. Returns the logits after each prompt's last token, (B, V).
fn prefill(
    model: &Model,
    prompts: &[Vec<u32>],
    cache: &mut KvCache,
) -> Result<Tensor, EngineError> {
    let cfg = model.config();
    let device = model.device();
    let b = prompts.len();
    let p = prompts.iter().map(Vec::len).max().unwrap_or(0);
    // (B, P) left-padded ids, positions counted from each row's first real token, validity.
    let mut ids = vec![0u32; b * p];
    let mut pos = vec![0u32; b * p];
    let mut valid = vec![0f32; b * p];
    for (r, prompt) in prompts.iter().enumerate() {
        let pad = p - prompt.len();
        for (j, &id) in prompt.iter().enumerate() {
            ids[r * p + pad + j] = id;
            pos[r * p + pad + j] = j as u32;
            valid[r * p + pad + j] = 1.0;
        }
    }
    let ids = Tensor::from_vec(ids, (b, p), device)?;
    let pos = Tensor::from_vec(pos, (b, p), device)?;
    let valid = Tensor::from_vec(valid, (b, p), device)?;
    // Per query token: scores and probabilities over up to P keys for H heads, the MLP's three
    // (I) activations and a few (D) buffers, in f32.
    let per_token =
        4 * (2 * cfg.num_attention_heads * p + 3 * cfg.intermediate_size + 4 * cfg.hidden_size);
    let chunk = (PREFILL_BYTES / (b * per_token).max(1)).clamp(1, p);
    let mut start = 0;
    loop {
        let len = chunk.min(p - start);
        let logits = model.forward_cached(
            &ids.narrow(1, start, len)?.contiguous()?,
            &pos.narrow(1, start, len)?.contiguous()?,
            &valid.narrow(1, start, len)?.contiguous()?,
            cache,
        )?;
        start += len;
        if start == p {
            return Ok(logits);
        }
    }
}

fn check_stops(params: &SamplingParams, stop: Option<&StopMatcher>) -> Result<(), EngineError> {
    match stop {
        None if !params.stop_strings.is_empty() => Err(EngineError::Params(
            "stop strings are set but no StopMatcher (tokenizer) was given".into(),
        )),
        Some(m) if m.stops() != params.stop_strings.as_slice() => {
            Err(EngineError::Params(format!(
                "the StopMatcher's stop strings {:?} differ from the sampling params' {:?}",
                m.stops(),
                params.stop_strings
            )))
        }
        _ => Ok(()),
    }
}

fn check_prompts(
    cfg: &ModelConfig,
    prompts: &[Vec<u32>],
    first: usize,
    max_new_tokens: usize,
) -> Result<(), EngineError> {
    let context = cfg.max_position_embeddings;
    for (i, prompt) in prompts.iter().enumerate() {
        let err = |message: String| EngineError::Prompt {
            prompt_index: first + i,
            message,
        };
        if prompt.is_empty() {
            return Err(err("empty prompt".into()));
        }
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= cfg.vocab_size) {
            return Err(err(format!(
                "token id {bad} is out of range for vocab_size {}",
                cfg.vocab_size
            )));
        }
        if prompt.len() + max_new_tokens > context {
            return Err(err(format!(
                "{} prompt tokens + {max_new_tokens} new tokens exceed the model's context of {context} \
                 (max_position_embeddings); prompts may have at most {} tokens",
                prompt.len(),
                context.saturating_sub(max_new_tokens)
            )));
        }
    }
    Ok(())
}

/// The prefill cache (B rows) and the forked one (N = B·G rows) coexist for a moment.
fn check_memory(
    cfg: &ModelConfig,
    b: usize,
    g: usize,
    capacity: usize,
    budget: Option<usize>,
) -> Result<(), EngineError> {
    let Some(budget) = budget else {
        return Ok(());
    };
    let rows = b * g;
    let forked = if g > 1 {
        KvCache::bytes_needed(cfg, rows, capacity)
    } else {
        0
    };
    let needed = KvCache::bytes_needed(cfg, b, capacity) + forked;
    if needed > budget {
        return Err(EngineError::CacheTooLarge {
            rows,
            capacity,
            needed,
            budget,
        });
    }
    Ok(())
}

fn into_groups(rows: Vec<Row>, prompts: &[Vec<u32>], first: usize, g: usize) -> Vec<Group> {
    let mut groups: Vec<Group> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| Group {
            prompt_index: first + i,
            prompt_ids: p.clone(),
            completions: Vec::with_capacity(g),
        })
        .collect();
    for row in rows {
        groups[row.prompt].completions.push(Completion {
            sample_index: row.sample,
            ids: row.ids,
            logprobs: row.logprobs,
            // Every row in `done` has finished; Length is the only way out of the loop otherwise.
            finish_reason: row.finish.unwrap_or(FinishReason::Length),
        });
    }
    for group in &mut groups {
        group.completions.sort_by_key(|c| c.sample_index);
    }
    groups
}
