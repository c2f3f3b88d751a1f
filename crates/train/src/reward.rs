//! Scoring rollouts: decode each completion and judge it with the configured verifiers.
//!
//! A thin adapter over `aha_verify::Reward`: the verifiers work on text, so completions are
//! decoded here by [`VerifierText`]: every token of the format is kept, special or not (`aha init`
//! makes `<think>`, `</think>`, `<answer>`, `</answer>` special tokens, and real checkpoints may
//! too — skipping special tokens scored such models 0, issue 13); only end-of-sequence and padding
//! ids are dropped, so an EOS token does not break a format check. Ids past the tokenizer's
//! vocabulary (embedding rows padded for alignment, which untrained models do sample) decode to
//! nothing, as in HF `tokenizers`. Besides the reward it records the two numbers every run
//! watches: accuracy (the first accuracy term's verdict) and the R1 format rate. Shaping of
//! rewards (overlong penalty) is not here.

use aha_model::tokenizer::Tokenizer;
use aha_model::ModelConfig;
use aha_verify::{format_reward, Reference, Reward, RewardInput, RewardSpec, ThinkRule};
use rayon::prelude::*;

use crate::data::Item;
use crate::engine::Group;
use crate::Result;

/// One completion's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionScore {
    pub text: String,
    /// `None`: no reward term could judge it.
    pub reward: Option<f32>,
    pub correct: Option<bool>,
    /// Follows the R1 template `<think>…</think><answer>…</answer>`.
    pub well_formed: bool,
    /// Unweighted term values, aligned with `Reward::names()`.
    pub components: Vec<Option<f32>>,
}

/// Completion ids as the text verifiers judge: every token but end-of-sequence and padding.
#[derive(Debug, Clone)]
pub struct VerifierText<'a> {
    tokenizer: &'a Tokenizer,
    /// EOS and padding ids, sorted.
    hidden: Vec<u32>,
}

impl<'a> VerifierText<'a> {
    /// Hides the EOS ids of the tokenizer and of the model config, and both pad ids.
    pub fn new(tokenizer: &'a Tokenizer, config: &ModelConfig) -> Self {
        let mut hidden = tokenizer.eos_token_ids();
        hidden.extend(&config.eos_token_ids);
        hidden.extend(tokenizer.pad_token_id());
        hidden.extend(config.pad_token_id);
        hidden.sort_unstable();
        hidden.dedup();
        Self { tokenizer, hidden }
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let known = self.tokenizer.vocab_size() as u32;
        let ids: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&i| i < known && self.hidden.binary_search(&i).is_err())
            .collect();
        Ok(self.tokenizer.decode(&ids, false)?)
    }
}

/// Scores every completion of `groups` against its item; returns (B·G) scores in group order.
/// The reward sees the whole batch at once (external terms are called once per call of this).
pub fn score_groups(
    reward: &Reward,
    text: &VerifierText<'_>,
    items: &[Item],
    groups: &[Group],
) -> Result<Vec<CompletionScore>> {
    let jobs: Vec<(&Item, &[u32])> = groups
        .iter()
        .flat_map(|g| {
            let item = &items[g.prompt_index];
            g.completions.iter().map(move |c| (item, c.ids.as_slice()))
        })
        .collect();
    let texts: Vec<String> = jobs
        .par_iter()
        .map(|(_, ids)| text.decode(ids))
        .collect::<Result<_>>()?;
    let items: Vec<&Item> = jobs.iter().map(|(item, _)| *item).collect();
    score_texts(reward, &items, texts)
}

/// Scores completion texts, `texts[i]` against `items[i]`, as one batch.
pub fn score_texts(
    reward: &Reward,
    items: &[&Item],
    texts: Vec<String>,
) -> Result<Vec<CompletionScore>> {
    let inputs: Vec<RewardInput<'_>> = (items.iter().zip(&texts).enumerate())
        .map(|(id, (item, text))| RewardInput {
            id,
            prompt: &item.problem,
            completion: text,
            row: &item.row,
        })
        .collect();
    let references: Vec<Reference<'_>> = items.iter().map(|it| it.reference()).collect();
    let scored = reward.score_batch(&inputs, &references)?;
    let rule = format_rule(reward);
    Ok(texts
        .into_iter()
        .zip(scored)
        .map(|(text, s)| CompletionScore {
            well_formed: format_reward(&text, rule) >= 1.0,
            reward: s.reward,
            correct: s.correct,
            components: s.components,
            text,
        })
        .collect())
}

/// The think rule of the reward's first format term (R1's `Required` when it has none), so a
/// prefilled `<think>` counts as well-formed where the reward says so.
fn format_rule(reward: &Reward) -> ThinkRule {
    reward
        .specs()
        .iter()
        .find_map(|s| match s {
            RewardSpec::Format { think, .. } => Some(*think),
            _ => None,
        })
        .unwrap_or(ThinkRule::Required)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aha_verify::Task;

    #[test]
    fn arithmetic_verdicts() {
        let r = Task::Arithmetic.reward();
        let item = Item::new("4821+5377".into(), Some("10198".into()), None, None);
        let texts = vec![
            "<think>1+7=8</think><answer>10198</answer>".to_string(),
            "<answer>10199</answer>".to_string(),
        ];
        let scores = score_texts(&r, &[&item, &item], texts).unwrap();
        let s = &scores[0];
        assert_eq!(
            (s.reward, s.correct, s.well_formed),
            (Some(1.0), Some(true), true)
        );
        let s = &scores[1];
        assert_eq!(
            (s.reward, s.correct, s.well_formed),
            (Some(0.0), Some(false), false)
        );
    }
}
