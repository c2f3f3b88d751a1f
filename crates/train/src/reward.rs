//! Scoring rollouts: decode each completion and judge it with the configured verifiers.
//!
//! A thin adapter over `aha_verify::Reward`: the verifiers work on text, so completions are
//! decoded here (special tokens skipped, so an EOS token does not break a format check; ids past
//! the tokenizer's vocabulary — embedding rows padded for alignment, which untrained models do
//! sample — decode to nothing, as in HF `tokenizers`). Besides
//! the reward it records the two numbers every run watches: accuracy (the first accuracy term's
//! verdict) and the R1 format rate. Shaping of rewards (overlong penalty) is not here.

use aha_model::tokenizer::Tokenizer;
use aha_verify::{format_reward, Reward, ThinkRule};
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

/// Scores every completion of `groups` against its item; returns (B·G) scores in group order.
pub fn score_groups(
    reward: &Reward,
    tokenizer: &Tokenizer,
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
    jobs.par_iter()
        .map(|(item, ids)| {
            let known = tokenizer.vocab_size() as u32;
            let ids: Vec<u32> = ids.iter().copied().filter(|&i| i < known).collect();
            let text = tokenizer.decode(&ids, true)?;
            Ok(score_text(reward, item, text))
        })
        .collect()
}

/// Scores one completion text.
pub fn score_text(reward: &Reward, item: &Item, text: String) -> CompletionScore {
    let scored = reward.score(&text, &item.reference());
    CompletionScore {
        well_formed: format_reward(&text, ThinkRule::Required) >= 1.0,
        reward: scored.reward,
        correct: scored.correct,
        components: scored.components,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aha_verify::Task;

    #[test]
    fn arithmetic_verdicts() {
        let r = Task::Arithmetic.reward();
        let item = Item {
            problem: "4821+5377".into(),
            answer: Some("10198".into()),
            numbers: None,
            target: None,
        };
        let s = score_text(
            &r,
            &item,
            "<think>1+7=8</think><answer>10198</answer>".into(),
        );
        assert_eq!(
            (s.reward, s.correct, s.well_formed),
            (Some(1.0), Some(true), true)
        );
        let s = score_text(&r, &item, "<answer>10199</answer>".into());
        assert_eq!(
            (s.reward, s.correct, s.well_formed),
            (Some(0.0), Some(false), false)
        );
    }
}
