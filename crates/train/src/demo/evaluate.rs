//! Judging the demo's completions and evaluating a model on held-out problems.
//!
//! [`judge`] decodes one completion and scores it with aha-verify's exact-integer reward under
//! the demo's template ([`ThinkRule::Optional`]: a think block is allowed, never required), and
//! notes whether it thought. [`evaluate`] samples k completions per problem with the rollout
//! engine and reports the R1 protocol's pass@1 and maj@k, plus what the demo's story needs:
//! think share, mean length, accuracy of each style. No training happens here.

use std::collections::HashMap;

use aha_model::Model;
use aha_verify::{arithmetic_reward, split_blocks, ThinkRule};

use super::summary::{Evaluation, Sample};
use super::task::Problem;
use super::tokenizer::{self, EOS};
use super::DemoError;
use crate::engine::{generate_groups_from, SamplingParams};

/// Prompts per engine call: bounds the KV cache without hurting batching.
const EVAL_CHUNK: usize = 64;

/// One completion, judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub text: String,
    /// Tokens sampled, end-of-sequence included.
    pub length: usize,
    pub think: bool,
    /// The answer block's content when the completion is well formed.
    pub answer: Option<String>,
    pub correct: bool,
}

/// The demo's reward for `text`: 1 for a well-formed completion whose answer is exactly the sum.
pub fn reward(problem: &Problem, text: &str) -> f32 {
    arithmetic_reward(text, &problem.answer(), ThinkRule::Optional).unwrap_or(0.0)
}

/// Decodes and judges one completion of `problem`.
pub fn judge(
    tok: &tokenizers::Tokenizer,
    problem: &Problem,
    ids: &[u32],
) -> Result<Judged, DemoError> {
    let text = tokenizer::decode(tok, ids)?;
    let answer = split_blocks(&text, ThinkRule::Optional).map(|b| b.answer.trim().to_string());
    let correct = reward(problem, &text) >= 1.0;
    Ok(Judged {
        think: text.trim_start().starts_with("<think>"),
        length: ids.len(),
        answer,
        correct,
        text,
    })
}

/// Samples `k` completions of each problem at `temperature` and judges them.
/// Returns one `Vec<Judged>` per problem, in order.
pub fn sample_and_judge(
    model: &Model,
    problems: &[Problem],
    k: usize,
    temperature: f32,
    max_new_tokens: usize,
    seed: u64,
) -> Result<Vec<Vec<Judged>>, DemoError> {
    let tok = tokenizer::demo_tokenizer()?;
    let params = SamplingParams {
        temperature,
        max_new_tokens,
        eos_token_ids: vec![tokenizer::token_id(&tok, EOS)?],
        seed,
        ..SamplingParams::default()
    };
    let mut out = Vec::with_capacity(problems.len());
    for (chunk_index, chunk) in problems.chunks(EVAL_CHUNK).enumerate() {
        let prompts = chunk
            .iter()
            .map(|p| tokenizer::encode(&tok, &p.prompt()))
            .collect::<Result<Vec<_>, _>>()?;
        let first = chunk_index * EVAL_CHUNK;
        let groups = generate_groups_from(model, &prompts, first, k, &params, None)
            .map_err(|e| DemoError::Engine(e.to_string()))?;
        for (problem, group) in chunk.iter().zip(&groups) {
            out.push(
                group
                    .completions
                    .iter()
                    .map(|c| judge(&tok, problem, &c.ids))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
    }
    Ok(out)
}

/// pass@1, maj@k and the style statistics of judged samples (one list of k per problem).
pub fn summarise(judged: &[Vec<Judged>], problems: &[Problem]) -> Evaluation {
    let all: Vec<&Judged> = judged.iter().flatten().collect();
    let n = all.len().max(1) as f64;
    let share = |f: &dyn Fn(&Judged) -> bool| all.iter().filter(|j| f(j)).count() as f64 / n;
    let acc_of = |think: bool| {
        let sel: Vec<_> = all.iter().filter(|j| j.think == think).collect();
        (!sel.is_empty())
            .then(|| sel.iter().filter(|j| j.correct).count() as f64 / sel.len() as f64)
    };
    let maj_right = judged
        .iter()
        .zip(problems)
        .filter(|(samples, p)| majority(samples).as_deref() == Some(p.answer().as_str()))
        .count();
    Evaluation {
        problems: problems.len(),
        k: judged.first().map_or(0, Vec::len),
        pass_at_1: share(&|j| j.correct),
        maj_at_k: maj_right as f64 / problems.len().max(1) as f64,
        think_share: share(&|j| j.think),
        malformed_share: share(&|j| j.answer.is_none()),
        mean_length: all.iter().map(|j| j.length as f64).sum::<f64>() / n,
        think_accuracy: acc_of(true),
        direct_accuracy: acc_of(false),
    }
}

/// The most frequent answer among well-formed samples; ties go to the one seen first.
fn majority(samples: &[Judged]) -> Option<String> {
    let mut counts: HashMap<&str, (usize, usize)> = HashMap::new();
    for (i, a) in samples
        .iter()
        .filter_map(|j| j.answer.as_deref())
        .enumerate()
    {
        counts.entry(a).or_insert((0, i)).0 += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)))
        .map(|(a, _)| a.to_string())
}

/// Evaluates `model` on `problems` with `k` samples each (the R1 protocol).
pub fn evaluate(
    model: &Model,
    problems: &[Problem],
    k: usize,
    temperature: f32,
    max_new_tokens: usize,
    seed: u64,
) -> Result<(Evaluation, Vec<Vec<Judged>>), DemoError> {
    let judged = sample_and_judge(model, problems, k, temperature, max_new_tokens, seed)?;
    Ok((summarise(&judged, problems), judged))
}

/// The first sample of each of the first `n` problems, for the report.
pub fn samples_for_report(judged: &[Vec<Judged>], problems: &[Problem], n: usize) -> Vec<Sample> {
    judged
        .iter()
        .zip(problems)
        .take(n)
        .filter_map(|(samples, p)| {
            samples.first().map(|j| Sample {
                prompt: p.prompt(),
                completion: j.text.clone(),
                answer: p.answer(),
                correct: j.correct,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Problem {
        Problem {
            a: 4821,
            b: 5377,
            digits: 4,
        }
    }

    #[test]
    fn judges_both_styles_and_junk() {
        let tok = tokenizer::demo_tokenizer().unwrap();
        let eos = tokenizer::token_id(&tok, EOS).unwrap();
        let ids = |text: &str| {
            let mut v = tokenizer::encode(&tok, text).unwrap();
            v.push(eos);
            judge(&tok, &p(), &v).unwrap()
        };
        let think = ids(&p().think_completion());
        assert!(think.correct && think.think && think.length == 45);
        let direct = ids("<answer>10198</answer>");
        assert!(direct.correct && !direct.think && direct.length == 8);
        let wrong = ids("<answer>9198</answer>");
        assert!(!wrong.correct && wrong.answer.as_deref() == Some("9198"));
        let junk = ids("<think>1+7=8<answer>10198</answer>");
        assert!(!junk.correct && junk.answer.is_none() && junk.think);
    }

    #[test]
    fn pass_at_1_and_majority() {
        let j = |answer: Option<&str>, think: bool| Judged {
            text: String::new(),
            length: if think { 45 } else { 8 },
            think,
            answer: answer.map(str::to_string),
            correct: answer == Some("10198"),
        };
        let problems = [p(), p()];
        let judged = vec![
            // Majority wrong although one sample is right.
            vec![
                j(Some("9198"), false),
                j(Some("9198"), false),
                j(Some("10198"), true),
            ],
            // Majority right; a malformed sample does not vote.
            vec![
                j(Some("10198"), true),
                j(None, false),
                j(Some("10198"), false),
            ],
        ];
        let e = summarise(&judged, &problems);
        assert_eq!(e.k, 3);
        assert!((e.pass_at_1 - 3.0 / 6.0).abs() < 1e-12);
        assert!((e.maj_at_k - 0.5).abs() < 1e-12);
        assert!((e.think_share - 2.0 / 6.0).abs() < 1e-12);
        assert!((e.malformed_share - 1.0 / 6.0).abs() < 1e-12);
        assert_eq!(e.think_accuracy, Some(1.0));
        assert_eq!(e.direct_accuracy, Some(0.25));
        assert!((e.mean_length - (2.0 * 45.0 + 4.0 * 8.0) / 6.0).abs() < 1e-12);
    }

    #[test]
    fn majority_ties_go_to_the_first_answer() {
        let j = |a: &str| Judged {
            text: String::new(),
            length: 8,
            think: false,
            answer: Some(a.into()),
            correct: false,
        };
        assert_eq!(
            majority(&[j("2"), j("1"), j("1"), j("2")]).as_deref(),
            Some("2")
        );
        assert_eq!(majority(&[]), None);
    }
}
