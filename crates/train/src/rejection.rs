//! Rejection sampling: the step of DeepSeek-R1 (arXiv:2501.12948, §2.3.3) that turns a
//! reasoning-RL checkpoint into SFT data for the next round. Sample K completions per prompt,
//! judge them with the task's verifiers, keep the correct ones.
//!
//! Sampling and scoring are evaluation's ([`crate::eval::sample_and_score`]): the same engine,
//! the same seeded streams keyed by `(seed, prompt index, sample index)`, the same reward. A
//! completion is kept when it is correct, well-formed if the reward has a format term (the math
//! and countdown tasks carry one, at weight 0) and the config asks for it, ended by EOS or a stop
//! string (a completion cut at `max_new_tokens` would teach the model to stop mid-thought), and
//! not a repeat of a completion already kept for that prompt; at most `keep_per_prompt` per
//! prompt, in sample order. R1's further filters (mixed languages, long paragraphs, code blocks)
//! and its generative-reward judging of non-verifiable data are not here.
//!
//! The kept completions become [`SftRecord`]s that `aha sft` reads: `{"prompt", "completion"}`
//! with the prompt as rendered by the template, or `{"messages"}` (a user and an assistant turn)
//! for the chat template, so SFT renders it with the checkpoint's own template and end-of-turn.
//! A problem given as `messages` gets its turns plus the assistant's; one given as `prompt_ids`
//! gets `{"prompt_ids", "completion"}`.

use std::ops::Range;

use aha_model::tokenizer::{ChatMessage, Tokenizer};
use aha_model::Model;
use aha_verify::RewardSpec;
use serde::{Deserialize, Serialize};

use crate::data::{GivenPrompt, Item, PromptTemplate};
use crate::engine::FinishReason;
use crate::eval::{sample_and_score_range, EvalConfig, ScoredGroup};
use crate::reward::CompletionScore;
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectionConfig {
    /// K, temperature, top-p, length, seed, template, the verifier, stop strings, batch size.
    pub sampling: EvalConfig,
    /// Most completions kept per prompt; `None` keeps every distinct correct one.
    pub keep_per_prompt: Option<usize>,
    /// Also require the reward's format terms (if any) to be fully met.
    pub require_format: bool,
}

/// One line of SFT data, as `aha sft` reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SftRecord {
    Pair {
        prompt: String,
        completion: String,
        reward: Option<f32>,
    },
    Chat {
        messages: Vec<ChatMessage>,
        reward: Option<f32>,
    },
    /// A `prompt_ids` problem: the prompt as given, the completion as text.
    Ids {
        prompt_ids: Vec<u32>,
        completion: String,
        reward: Option<f32>,
    },
}

/// Counts over a run. Every correct completion that is not kept is counted under the first
/// rule it fails, in the order the rules are listed here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionSummary {
    pub prompts: usize,
    pub generated: usize,
    pub correct: usize,
    pub kept: usize,
    /// Prompts with at least one completion kept.
    pub prompts_with_kept: usize,
    pub dropped_malformed: usize,
    pub dropped_truncated: usize,
    pub dropped_duplicate: usize,
    pub dropped_over_limit: usize,
}

impl RejectionSummary {
    /// Adds another share's counts (data-parallel ranks).
    pub fn add(&mut self, o: &RejectionSummary) {
        self.prompts += o.prompts;
        self.generated += o.generated;
        self.correct += o.correct;
        self.kept += o.kept;
        self.prompts_with_kept += o.prompts_with_kept;
        self.dropped_malformed += o.dropped_malformed;
        self.dropped_truncated += o.dropped_truncated;
        self.dropped_duplicate += o.dropped_duplicate;
        self.dropped_over_limit += o.dropped_over_limit;
    }
}

/// Why a correct completion was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Incorrect,
    Malformed,
    Truncated,
    Duplicate,
    OverLimit,
    Kept,
}

/// The verdict on each completion of one group, in sample order. `format_terms` are the indices
/// of the reward's format terms in `CompletionScore::components` (empty: no format rule).
pub fn select(
    scores: &[CompletionScore],
    finish: &[FinishReason],
    format_terms: &[usize],
    keep_per_prompt: Option<usize>,
) -> Vec<Verdict> {
    let mut kept: Vec<&str> = Vec::new();
    scores
        .iter()
        .zip(finish)
        .map(|(s, f)| {
            let formatted = format_terms
                .iter()
                .all(|&t| s.components.get(t).copied().flatten() == Some(1.0));
            let verdict = if s.correct != Some(true) {
                Verdict::Incorrect
            } else if !formatted {
                Verdict::Malformed
            } else if *f == FinishReason::Length {
                Verdict::Truncated
            } else if kept.contains(&s.text.as_str()) {
                Verdict::Duplicate
            } else if keep_per_prompt.is_some_and(|n| kept.len() >= n) {
                Verdict::OverLimit
            } else {
                Verdict::Kept
            };
            if verdict == Verdict::Kept {
                kept.push(&s.text);
            }
            verdict
        })
        .collect()
}

/// Samples, judges and filters completions of `items`; hands each batch's kept records to
/// `on_kept` (prompt by prompt, in sample order) and returns the counts.
pub fn rejection_sample(
    model: &Model,
    tokenizer: &Tokenizer,
    items: &[Item],
    cfg: &RejectionConfig,
    on_kept: impl FnMut(&[SftRecord]) -> Result<()>,
) -> Result<RejectionSummary> {
    rejection_sample_range(model, tokenizer, items, 0..items.len(), cfg, on_kept)
}

/// [`rejection_sample`] of the items in `range` only (a data-parallel rank's share; indices
/// and random streams stay those of the whole list).
pub fn rejection_sample_range(
    model: &Model,
    tokenizer: &Tokenizer,
    items: &[Item],
    range: Range<usize>,
    cfg: &RejectionConfig,
    mut on_kept: impl FnMut(&[SftRecord]) -> Result<()>,
) -> Result<RejectionSummary> {
    if cfg.keep_per_prompt == Some(0) {
        return Err(Error::config("keep_per_prompt", "must be at least 1"));
    }
    let reward = cfg.sampling.reward();
    let format_terms: Vec<usize> = match cfg.require_format {
        true => (reward.specs().iter().enumerate())
            .filter(|(_, s)| matches!(s, RewardSpec::Format { .. }))
            .map(|(i, _)| i)
            .collect(),
        false => Vec::new(),
    };
    let template = &cfg.sampling.template;
    let mut sum = RejectionSummary {
        prompts: range.len(),
        ..RejectionSummary::default()
    };
    let sampling = &cfg.sampling;
    sample_and_score_range(model, tokenizer, items, range, sampling, |batch| {
        let mut records = Vec::new();
        for ScoredGroup {
            index,
            group,
            scores,
        } in &batch
        {
            let item = &items[*index];
            let finish: Vec<FinishReason> =
                group.completions.iter().map(|c| c.finish_reason).collect();
            let verdicts = select(scores, &finish, &format_terms, cfg.keep_per_prompt);
            let before = records.len();
            for (s, v) in scores.iter().zip(&verdicts) {
                sum.generated += 1;
                sum.correct += usize::from(*v != Verdict::Incorrect);
                match v {
                    Verdict::Incorrect => {}
                    Verdict::Malformed => sum.dropped_malformed += 1,
                    Verdict::Truncated => sum.dropped_truncated += 1,
                    Verdict::Duplicate => sum.dropped_duplicate += 1,
                    Verdict::OverLimit => sum.dropped_over_limit += 1,
                    Verdict::Kept => records.push(record(template, item, s, tokenizer)?),
                }
            }
            sum.kept += records.len() - before;
            sum.prompts_with_kept += usize::from(records.len() > before);
        }
        on_kept(&records)
    })?;
    Ok(sum)
}

fn record(
    template: &PromptTemplate,
    item: &Item,
    score: &CompletionScore,
    tokenizer: &Tokenizer,
) -> Result<SftRecord> {
    let completion = score.text.clone();
    let reward = score.reward;
    match &item.given {
        Some(GivenPrompt::Ids(ids)) => {
            return Ok(SftRecord::Ids {
                prompt_ids: ids.clone(),
                completion,
                reward,
            })
        }
        Some(GivenPrompt::Messages(turns)) => {
            let mut messages = turns.clone();
            messages.push(ChatMessage::new("assistant", completion));
            return Ok(SftRecord::Chat { messages, reward });
        }
        None => {}
    }
    Ok(match template {
        PromptTemplate::Chat => SftRecord::Chat {
            messages: vec![
                ChatMessage::new("user", item.problem.clone()),
                ChatMessage::new("assistant", completion),
            ],
            reward,
        },
        PromptTemplate::R1Zero | PromptTemplate::Format { .. } | PromptTemplate::Raw => {
            SftRecord::Pair {
                prompt: template.render(item, tokenizer)?,
                completion,
                reward,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(text: &str, correct: bool, format: f32) -> CompletionScore {
        CompletionScore {
            text: text.into(),
            reward: Some(if correct { 1.0 } else { 0.0 }),
            correct: Some(correct),
            well_formed: format == 1.0,
            components: vec![Some(if correct { 1.0 } else { 0.0 }), Some(format)],
        }
    }

    #[test]
    fn keeps_distinct_correct_well_formed_finished_completions_up_to_the_limit() {
        use FinishReason::{Length, Stop};
        use Verdict::*;
        let scores = [
            score("a", false, 1.0),
            score("b", true, 0.0),
            score("c", true, 1.0),
            score("d", true, 1.0),
            score("c", true, 1.0),
            score("e", true, 1.0),
            score("f", true, 1.0),
        ];
        let finish = [Stop, Stop, Stop, Length, Stop, Stop, Stop];
        assert_eq!(
            select(&scores, &finish, &[1], Some(2)),
            [Incorrect, Malformed, Kept, Truncated, Duplicate, Kept, OverLimit]
        );
        // Without a format rule or a limit, "b" and "f" are kept too.
        assert_eq!(
            select(&scores, &finish, &[], None),
            [Incorrect, Kept, Kept, Truncated, Duplicate, Kept, Kept]
        );
    }

    #[test]
    fn records_serialise_as_aha_sft_lines() {
        let pair = SftRecord::Pair {
            prompt: "Q:1+2=".into(),
            completion: "<answer>3</answer>".into(),
            reward: Some(1.0),
        };
        assert_eq!(
            serde_json::to_string(&pair).unwrap(),
            r#"{"prompt":"Q:1+2=","completion":"<answer>3</answer>","reward":1.0}"#
        );
        let chat = SftRecord::Chat {
            messages: vec![
                ChatMessage::new("user", "1+2"),
                ChatMessage::new("assistant", "3"),
            ],
            reward: Some(1.0),
        };
        assert_eq!(
            serde_json::to_string(&chat).unwrap(),
            r#"{"messages":[{"role":"user","content":"1+2"},{"role":"assistant","content":"3"}],"reward":1.0}"#
        );
    }
}
