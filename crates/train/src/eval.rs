//! Evaluation: K sampled completions per problem, judged by a verifier task.
//!
//! Reports pass@1 averaged over the K samples (DeepSeek-R1's protocol: temperature 0.6, top-p
//! 0.95), the unbiased pass@k estimator of Chen et al. (arXiv:2107.03374, eq. 1) for k = 1, 2,
//! 4, … up to K, maj@K (majority vote over the extracted answers; ties go to the answer seen
//! first), and completion lengths. Completions are keyed by `(seed, problem index, sample)` so
//! results do not depend on how problems are batched. Reading files and printing are the CLI's.

use std::collections::BTreeMap;
use std::ops::Range;

use aha_model::tokenizer::Tokenizer;
use aha_model::Model;
use aha_verify::code::extract_program;
use aha_verify::{equivalent_with, extract, Reward, Task, TaskOptions};
use serde::{Deserialize, Serialize};

use crate::collective::{gather_json, shard, Collective};
use crate::data::{GivenPrompt, Item, PromptTemplate};
use crate::engine::{generate_groups_from, FinishReason, Group, SamplingParams};
use crate::reward::{score_groups, CompletionScore, VerifierText};
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// Samples per problem.
    pub k: usize,
    pub temperature: f32,
    pub top_p: f32,
    /// Keep only the `top_k` most likely tokens; 0 is off.
    #[serde(default)]
    pub top_k: usize,
    pub max_new_tokens: usize,
    pub seed: u64,
    pub template: PromptTemplate,
    /// The verifier that judges completions, with the options a `[[reward]]` table takes
    /// (extraction, tolerance, Countdown's rule, think rule): [`EvalConfig::reward`].
    pub task: Task,
    #[serde(default)]
    pub options: TaskOptions,
    pub stop_strings: Vec<String>,
    /// Problems per generation call (memory: prompts × k rows of KV cache).
    pub prompts_per_batch: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            k: 1,
            temperature: 0.6,
            top_p: 0.95,
            top_k: 0,
            max_new_tokens: 512,
            seed: 0,
            template: PromptTemplate::R1Zero,
            task: Task::Math,
            options: TaskOptions::default(),
            stop_strings: Vec::new(),
            prompts_per_batch: 16,
        }
    }
}

impl EvalConfig {
    /// The reward completions are judged with: the task's, built with the options.
    pub fn reward(&self) -> Reward {
        self.task.reward_with(&self.options)
    }
}

/// One problem's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    pub index: usize,
    pub problem: String,
    pub answer: Option<String>,
    pub completions: Vec<String>,
    pub correct: Vec<bool>,
    pub lengths: Vec<usize>,
    /// Mean correctness of the K samples.
    pub pass_at_1: f64,
    pub majority_answer: Option<String>,
    pub majority_correct: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSummary {
    pub problems: usize,
    pub k: usize,
    pub pass_at_1: f64,
    /// Unbiased pass@k for k = 1, 2, 4, …, K (K always included).
    pub pass_at_k: BTreeMap<usize, f64>,
    pub maj_at_k: f64,
    pub completion_len_mean: f64,
    pub completion_len_max: usize,
    pub truncated_share: f64,
    pub format_rate: f64,
}

/// Unbiased pass@k from `n` samples of which `c` are correct: `1 − C(n−c, k) / C(n, k)`,
/// computed as a product to stay exact for large n.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    if n < k || k == 0 {
        return f64::NAN;
    }
    if n - c < k {
        return 1.0;
    }
    1.0 - ((n - c + 1)..=n)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product::<f64>()
}

/// The index of a completion whose answer belongs to the largest group of equal answers
/// (`None` when no completion has an extractable answer). Math answers are grouped by
/// equivalence (within `rel_tol`, as the math verifier), other tasks by exact text.
pub fn majority(answers: &[Option<&str>], task: Task, rel_tol: f64) -> Option<usize> {
    // (representative index, count), in order of first appearance.
    let mut clusters: Vec<(usize, usize)> = Vec::new();
    for (i, a) in answers.iter().enumerate() {
        let Some(a) = a else { continue };
        let same = |j: usize| {
            let b = answers[j].unwrap_or_default();
            match task {
                Task::Math => a.trim() == b.trim() || equivalent_with(b, a, rel_tol),
                Task::Countdown | Task::Arithmetic | Task::Format | Task::Code => {
                    a.trim() == b.trim()
                }
            }
        };
        match clusters.iter_mut().find(|(rep, _)| same(*rep)) {
            Some(c) => c.1 += 1,
            None => clusters.push((i, 1)),
        }
    }
    let best = clusters.iter().map(|c| c.1).max()?;
    clusters.iter().find(|c| c.1 == best).map(|c| c.0)
}

/// One problem's K completions with their verdicts.
#[derive(Debug, Clone)]
pub struct ScoredGroup {
    /// The problem's index in the input.
    pub index: usize,
    /// The K completions (`group.prompt_index == index`).
    pub group: Group,
    /// K verdicts, aligned with `group.completions`.
    pub scores: Vec<CompletionScore>,
}

/// Samples `cfg.k` completions of every item (`cfg.prompts_per_batch` problems per generation
/// call, EOS from the tokenizer and the model config) and judges them with `cfg.reward()`; hands
/// each batch's groups, in input order, to `on_batch`. Shared by evaluation and rejection
/// sampling.
pub fn sample_and_score(
    model: &Model,
    tokenizer: &Tokenizer,
    items: &[Item],
    cfg: &EvalConfig,
    on_batch: impl FnMut(Vec<ScoredGroup>) -> Result<()>,
) -> Result<()> {
    sample_and_score_range(model, tokenizer, items, 0..items.len(), cfg, on_batch)
}

/// [`sample_and_score`] of the items in `range` only (a data-parallel rank's share); indices
/// and random streams stay those of the whole list.
pub fn sample_and_score_range(
    model: &Model,
    tokenizer: &Tokenizer,
    items: &[Item],
    range: Range<usize>,
    cfg: &EvalConfig,
    mut on_batch: impl FnMut(Vec<ScoredGroup>) -> Result<()>,
) -> Result<()> {
    if cfg.k == 0 || cfg.prompts_per_batch == 0 {
        return Err(Error::config(
            "k",
            "k and prompts_per_batch must be at least 1",
        ));
    }
    let mut eos = tokenizer.eos_token_ids();
    eos.extend(model.config().eos_token_ids.iter().copied());
    let params = SamplingParams {
        temperature: cfg.temperature,
        top_p: cfg.top_p,
        top_k: cfg.top_k,
        max_new_tokens: cfg.max_new_tokens,
        stop_strings: cfg.stop_strings.clone(),
        eos_token_ids: eos,
        seed: cfg.seed,
        max_cache_bytes: None,
    };
    let stop = match cfg.stop_strings.is_empty() {
        true => None,
        false => Some(crate::engine::StopMatcher::with_decoder(
            &cfg.stop_strings,
            |ids| tokenizer.decode(ids, false).map_err(|e| e.to_string()),
        )?),
    };
    let text = VerifierText::new(tokenizer, model.config());
    let reward = cfg.reward();
    let score = |groups: Vec<Group>| -> Result<Vec<ScoredGroup>> {
        // (B·K) scores in group order; `score_groups` indexes items by prompt_index.
        let mut scores = score_groups(&reward, &text, items, &groups)?.into_iter();
        Ok(groups
            .into_iter()
            .map(|group| ScoredGroup {
                index: group.prompt_index,
                scores: scores.by_ref().take(group.completions.len()).collect(),
                group,
            })
            .collect())
    };
    // Batch b is scored on its own thread while batch b + 1 is generated, so a slow reward
    // (a user's program, a server) hides behind generation; batches still reach `on_batch` in
    // order, and scores are pure functions of the batch, so results do not depend on timing.
    std::thread::scope(|scope| {
        let mut scoring: Option<std::thread::ScopedJoinHandle<'_, Result<Vec<ScoredGroup>>>> = None;
        let mut finish = |handle: std::thread::ScopedJoinHandle<'_, Result<Vec<ScoredGroup>>>| {
            // A panic while scoring is a bug: carry it on as one.
            let scored = crate::worker::join_working(handle)
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            on_batch(scored)
        };
        let start = range.start;
        for (b, chunk) in items[range].chunks(cfg.prompts_per_batch).enumerate() {
            let first = start + b * cfg.prompts_per_batch;
            let prompts = chunk
                .iter()
                .map(|it| cfg.template.encode(it, tokenizer))
                .collect::<Result<Vec<_>>>()?;
            let groups =
                generate_groups_from(model, &prompts, first, cfg.k, &params, stop.as_ref())?;
            if let Some(previous) = scoring.take() {
                finish(previous)?;
            }
            let score = &score;
            scoring = Some(scope.spawn(move || score(groups)));
        }
        match scoring {
            Some(last) => finish(last),
            None => Ok(()),
        }
    })
}

/// Evaluates `model` on `items`; results per item in order, and the summary.
pub fn evaluate(
    model: &Model,
    tokenizer: &Tokenizer,
    items: &[Item],
    cfg: &EvalConfig,
) -> Result<(EvalSummary, Vec<ItemResult>)> {
    let part = evaluate_range(model, tokenizer, items, 0..items.len(), cfg)?;
    Ok((
        summarise(&part.results, cfg.k, part.truncated, part.formatted),
        part.results,
    ))
}

/// [`evaluate`] as one rank of `comm`: each rank evaluates a contiguous share of the items and
/// rank 0 gets the summary and every result in input order (`None` on the other ranks).
pub fn evaluate_on(
    model: &Model,
    tokenizer: &Tokenizer,
    items: &[Item],
    cfg: &EvalConfig,
    comm: &dyn Collective,
) -> Result<Option<(EvalSummary, Vec<ItemResult>)>> {
    let range = shard(items.len(), comm.rank(), comm.size());
    let part = evaluate_range(model, tokenizer, items, range, cfg)?;
    let Some(parts) = gather_json(comm, &part)? else {
        return Ok(None);
    };
    let (mut results, mut truncated, mut formatted) = (Vec::new(), 0, 0);
    for p in parts {
        results.extend(p.results);
        truncated += p.truncated;
        formatted += p.formatted;
    }
    Ok(Some((
        summarise(&results, cfg.k, truncated, formatted),
        results,
    )))
}

/// One share's results and the counts the summary needs besides them.
#[derive(Serialize, Deserialize)]
struct EvalPart {
    results: Vec<ItemResult>,
    truncated: usize,
    formatted: usize,
}

fn evaluate_range(
    model: &Model,
    tokenizer: &Tokenizer,
    items: &[Item],
    range: Range<usize>,
    cfg: &EvalConfig,
) -> Result<EvalPart> {
    let (task, extract_cfg) = (cfg.task, &cfg.options.extract);
    let mut results = Vec::with_capacity(range.len());
    let (mut truncated, mut formatted) = (0usize, 0usize);
    sample_and_score_range(model, tokenizer, items, range, cfg, |batch| {
        for ScoredGroup {
            index,
            group,
            scores: s,
        } in batch
        {
            let item = &items[index];
            truncated += group
                .completions
                .iter()
                .filter(|c| c.finish_reason == FinishReason::Length)
                .count();
            formatted += s.iter().filter(|x| x.well_formed).count();
            let correct: Vec<bool> = s.iter().map(|x| x.correct == Some(true)).collect();
            // A code completion's "answer" is its program: maj@K votes on identical programs.
            let extracted: Vec<Option<std::borrow::Cow<'_, str>>> = s
                .iter()
                .map(|x| match task {
                    Task::Code => extract_program(&x.text).map(std::borrow::Cow::Borrowed),
                    _ => extract(&x.text, extract_cfg).map(|e| e.text),
                })
                .collect();
            let answers: Vec<Option<&str>> = extracted.iter().map(|a| a.as_deref()).collect();
            let maj = majority(&answers, task, cfg.options.rel_tol);
            // A `prompt_ids` problem has no text but the prompt the model saw.
            let problem = match &item.given {
                Some(GivenPrompt::Ids(ids)) => tokenizer.decode(ids, false)?,
                _ => item.problem.clone(),
            };
            results.push(ItemResult {
                index,
                problem,
                answer: item.answer.clone(),
                completions: s.iter().map(|x| x.text.clone()).collect(),
                pass_at_1: correct.iter().filter(|&&c| c).count() as f64 / cfg.k as f64,
                majority_answer: maj.and_then(|m| answers[m]).map(str::to_string),
                majority_correct: maj.is_some_and(|m| correct[m]),
                correct,
                lengths: group.completions.iter().map(|c| c.ids.len()).collect(),
            });
        }
        Ok(())
    })?;
    Ok(EvalPart {
        results,
        truncated,
        formatted,
    })
}

fn summarise(results: &[ItemResult], k: usize, truncated: usize, formatted: usize) -> EvalSummary {
    let n = results.len().max(1) as f64;
    let samples = (results.len() * k).max(1) as f64;
    let mut ks: Vec<usize> = std::iter::successors(Some(1usize), |x| Some(x * 2))
        .take_while(|&x| x < k)
        .collect();
    ks.push(k);
    let pass_at_k = ks
        .into_iter()
        .map(|kk| {
            let p = results
                .iter()
                .map(|r| pass_at_k(k, r.correct.iter().filter(|&&c| c).count(), kk))
                .sum::<f64>();
            (kk, p / n)
        })
        .collect();
    let lengths = results.iter().flat_map(|r| r.lengths.iter().copied());
    EvalSummary {
        problems: results.len(),
        k,
        pass_at_1: results.iter().map(|r| r.pass_at_1).sum::<f64>() / n,
        pass_at_k,
        maj_at_k: results.iter().filter(|r| r.majority_correct).count() as f64 / n,
        completion_len_mean: lengths.clone().sum::<usize>() as f64 / samples,
        completion_len_max: lengths.max().unwrap_or(0),
        truncated_share: truncated as f64 / samples,
        format_rate: formatted as f64 / samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_at_k_matches_the_combinatorial_formula() {
        // n = 5, c = 2, k = 2: 1 − C(3,2)/C(5,2) = 1 − 3/10.
        assert!((pass_at_k(5, 2, 2) - 0.7).abs() < 1e-12);
        // k = 1 is the plain fraction correct.
        assert!((pass_at_k(8, 3, 1) - 3.0 / 8.0).abs() < 1e-12);
        assert_eq!(pass_at_k(4, 0, 2), 0.0);
        assert_eq!(pass_at_k(4, 3, 2), 1.0);
        // n = 10, c = 1, k = 5: 1 − C(9,5)/C(10,5) = 1 − 126/252.
        assert!((pass_at_k(10, 1, 5) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn majority_groups_equivalent_answers() {
        let a = [
            Some("0.5"),
            Some("7"),
            Some("\\frac{1}{2}"),
            None,
            Some("7"),
            Some("1/2"),
        ];
        let tol = aha_verify::DEFAULT_REL_TOL;
        assert_eq!(majority(&a, Task::Math, tol), Some(0));
        // As exact text, "7" wins (2 votes against 1 each).
        assert_eq!(majority(&a, Task::Arithmetic, tol), Some(1));
        assert_eq!(majority(&[None, None], Task::Math, tol), None);
        // The tolerance groups decimals as the verifier judges them.
        let b = [Some("0.33"), Some("7"), Some("\\frac{1}{3}"), Some("7")];
        assert_eq!(majority(&b, Task::Math, tol), Some(1));
        assert_eq!(majority(&b, Task::Math, 0.02), Some(0));
    }
}
