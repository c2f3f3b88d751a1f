//! Evaluating a model on the demo's held-out problems.
//!
//! Sampling and scoring are [`aha_train::eval::sample_and_score`] (the rollout engine, then
//! aha-verify's exact-integer reward under the demo's template, [`ThinkRule::Optional`]: a think
//! block is allowed, never required). This file adds what the demo's story needs on top of the R1
//! protocol's pass@1 and maj@k: think share, malformed share, mean length, accuracy of each style.
//! No training happens here.

use std::collections::HashMap;

use aha_model::tokenizer::Tokenizer;
use aha_model::Model;
use aha_train::data::{Item, PromptTemplate};
use aha_train::eval::{sample_and_score, EvalConfig};
use aha_verify::{split_blocks, RewardSpec, Task, TaskOptions, ThinkRule};

use crate::corpus::Style;
use crate::summary::{Evaluation, Sample};
use crate::task::Problem;
use crate::DemoError;

/// Prompts per engine call: bounds the KV cache without hurting batching.
const EVAL_CHUNK: usize = 64;

/// The demo's prompt template: the R1-Zero template shrunk to the task (`Q:4821+5377=`).
pub fn prompt_template() -> PromptTemplate {
    PromptTemplate::Format {
        format: "Q:{prompt}=".into(),
    }
}

/// The demo's reward: 1 for a well-formed completion whose answer is exactly the sum; thinking
/// allowed, never required nor rewarded by itself.
pub fn reward_spec() -> RewardSpec {
    RewardSpec::Arithmetic {
        weight: 1.0,
        think: ThinkRule::Optional,
    }
}

/// Evaluation's verifier options: with them the arithmetic task's reward is [`reward_spec`], the
/// reward training uses.
fn judge_options() -> TaskOptions {
    TaskOptions {
        think: Some(ThinkRule::Optional),
        ..TaskOptions::default()
    }
}

/// `problem` as a dataset item (`4821+5377`, answer `10198`).
pub fn item(problem: &Problem) -> Item {
    Item::new(
        format!("{}+{}", problem.a, problem.b),
        Some(problem.answer()),
        None,
        None,
    )
}

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

impl Judged {
    fn new(text: String, length: usize, correct: bool) -> Judged {
        Judged {
            think: text.trim_start().starts_with("<think>"),
            answer: split_blocks(&text, ThinkRule::Optional).map(|b| b.answer.trim().to_string()),
            length,
            correct,
            text,
        }
    }
}

/// How the held-out problems are sampled: `k` completions each at `temperature`, at most
/// `max_new_tokens`, from `seed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    pub k: usize,
    pub temperature: f32,
    pub max_new_tokens: usize,
    pub seed: u64,
}

/// Samples completions of each problem and judges them; one `Vec<Judged>` per problem, in
/// order.
pub fn sample_and_judge(
    model: &Model,
    tok: &Tokenizer,
    problems: &[Problem],
    sampling: Sampling,
) -> Result<Vec<Vec<Judged>>, DemoError> {
    sample_and_judge_opening(model, tok, problems, sampling, None)
}

/// Accuracy of `model` on `problems` when its response is made to open in `style`: the prompt
/// ends with `<think>` (or `<answer>`) and the model completes it, one sample per problem at the
/// sampling temperature. Measures the skill itself, not how often the model chooses to use it.
pub fn style_accuracy(
    model: &Model,
    tok: &Tokenizer,
    problems: &[Problem],
    style: Style,
    sampling: Sampling,
) -> Result<f64, DemoError> {
    let judged = sample_and_judge_opening(
        model,
        tok,
        problems,
        Sampling { k: 1, ..sampling },
        Some(style),
    )?;
    let right = judged.iter().flatten().filter(|j| j.correct).count();
    Ok(right as f64 / problems.len().max(1) as f64)
}

/// [`sample_and_judge`], with the response's opening tag given in the prompt when `opening` is
/// set (then the tag is put back in front of each completion before it is judged).
fn sample_and_judge_opening(
    model: &Model,
    tok: &Tokenizer,
    problems: &[Problem],
    sampling: Sampling,
    opening: Option<Style>,
) -> Result<Vec<Vec<Judged>>, DemoError> {
    let items: Vec<Item> = problems.iter().map(item).collect();
    let prefix = match opening {
        None => "",
        Some(Style::Think) => "<think>",
        Some(Style::Direct) => "<answer>",
    };
    let cfg = EvalConfig {
        k: sampling.k,
        temperature: sampling.temperature,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens: sampling.max_new_tokens,
        seed: sampling.seed,
        template: PromptTemplate::Format {
            format: format!("Q:{{prompt}}={prefix}"),
        },
        task: Task::Arithmetic,
        options: judge_options(),
        stop_strings: Vec::new(),
        prompts_per_batch: EVAL_CHUNK,
    };
    let mut out = Vec::with_capacity(problems.len());
    sample_and_score(model, tok, &items, &cfg, |batch| {
        for scored in batch {
            let answer = problems.get(scored.index).map(Problem::answer);
            let judged = scored
                .group
                .completions
                .iter()
                .zip(scored.scores)
                .map(|(c, s)| match opening {
                    None => Judged::new(s.text, c.ids.len(), s.correct == Some(true)),
                    // The reward judged the completion without its opening tag: judge the
                    // whole response here instead.
                    Some(_) => {
                        let mut j = Judged::new(format!("{prefix}{}", s.text), c.ids.len(), false);
                        j.correct = j.answer.is_some() && j.answer == answer;
                        j
                    }
                });
            out.push(judged.collect());
        }
        Ok(())
    })?;
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

/// Evaluates `model` on `problems` (the R1 protocol).
pub fn evaluate(
    model: &Model,
    tok: &Tokenizer,
    problems: &[Problem],
    sampling: Sampling,
) -> Result<(Evaluation, Vec<Vec<Judged>>), DemoError> {
    let judged = sample_and_judge(model, tok, problems, sampling)?;
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
    fn evaluation_judges_with_the_training_reward() {
        let judged = Task::Arithmetic.reward_with(&judge_options());
        assert_eq!(judged.specs(), [reward_spec()]);
    }

    #[test]
    fn judges_both_styles_and_junk() {
        let tok = aha_model::char_tokenizer::char_tokenizer().unwrap();
        let reward = aha_verify::Reward::new(vec![reward_spec()]).unwrap();
        let ids = |text: &str| {
            let mut v = tok.encode(text, false).unwrap();
            v.extend(tok.eos_token_ids());
            let text = tok.decode(&v, true).unwrap();
            let it = item(&p());
            let s = aha_train::reward::score_texts(&reward, &[&it], vec![text]).unwrap();
            let s = s.into_iter().next().unwrap();
            Judged::new(s.text, v.len(), s.correct == Some(true))
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
