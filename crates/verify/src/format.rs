//! The R1 template check: exactly one `<think>…</think>` followed by exactly one
//! `<answer>…</answer>`, with nothing but whitespace around them.
//!
//! [`split_blocks`] is shared by the format reward, the exact-integer reward and the language
//! reward, so all three agree on what a well-formed response is. This file does not look at what
//! the answer says.
//!
//! Gaming it does not pay: a second block of either kind, a tag inside a block, text after
//! `</answer>`, an empty answer, or (when thinking is required) an empty think block all fail.

use serde::{Deserialize, Serialize};

const THINK_OPEN: &str = "<think>";
const THINK_CLOSE: &str = "</think>";
const ANSWER_OPEN: &str = "<answer>";
const ANSWER_CLOSE: &str = "</answer>";
const TAGS: [&str; 4] = [THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE];

/// Whether a think block is expected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThinkRule {
    /// `<think>…</think><answer>…</answer>`, the think block non-empty.
    #[default]
    Required,
    /// As `Required`, or an answer block alone (the demo's direct answers).
    Optional,
    /// The prompt already ends with `<think>`: the completion is `…</think><answer>…</answer>`.
    Prefilled,
}

/// The two blocks of a well-formed response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocks<'a> {
    /// Think-block content, `None` when the response answered directly (only with
    /// [`ThinkRule::Optional`]).
    pub think: Option<&'a str>,
    /// Answer-block content, untrimmed.
    pub answer: &'a str,
}

fn has_tag(s: &str) -> bool {
    TAGS.iter().any(|t| s.contains(t))
}

/// Splits a well-formed response into its blocks; `None` when the response breaks the template.
pub fn split_blocks(completion: &str, rule: ThinkRule) -> Option<Blocks<'_>> {
    let s = completion.trim();
    let after_open = match rule {
        ThinkRule::Prefilled => s,
        ThinkRule::Required => s.strip_prefix(THINK_OPEN)?,
        ThinkRule::Optional => match s.strip_prefix(THINK_OPEN) {
            Some(rest) => rest,
            None => {
                return answer_only(s).map(|answer| Blocks {
                    think: None,
                    answer,
                })
            }
        },
    };
    let close = after_open.find(THINK_CLOSE)?;
    let think = &after_open[..close];
    if has_tag(think) || think.trim().is_empty() {
        return None;
    }
    let answer = answer_only(after_open[close + THINK_CLOSE.len()..].trim_start())?;
    Some(Blocks {
        think: Some(think),
        answer,
    })
}

/// `<answer>…</answer>` and nothing else; the content non-empty and free of tags.
fn answer_only(s: &str) -> Option<&str> {
    let inner = s.strip_prefix(ANSWER_OPEN)?.strip_suffix(ANSWER_CLOSE)?;
    (!has_tag(inner) && !inner.trim().is_empty()).then_some(inner)
}

/// 1.0 for a well-formed response, 0.0 otherwise.
pub fn format_reward(completion: &str, rule: ThinkRule) -> f32 {
    if split_blocks(completion, rule).is_some() {
        1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_think() {
        let cases = [
            ("<think>a</think><answer>1</answer>", 1.0),
            ("  <think>\nwork\n</think>\n\n<answer> 1 </answer>\n", 1.0),
            ("<answer>1</answer>", 0.0),
            ("<think></think><answer>1</answer>", 0.0),
            ("<think> </think><answer>1</answer>", 0.0),
            ("<think>a</think><answer></answer>", 0.0),
            ("<think>a</think><answer>1</answer> extra", 0.0),
            ("pre <think>a</think><answer>1</answer>", 0.0),
            ("<think>a</think><answer>1</answer><answer>2</answer>", 0.0),
            ("<think>a</think><think>b</think><answer>1</answer>", 0.0),
            ("<think>a<answer>1</answer></think><answer>1</answer>", 0.0),
            ("<think>a</think>text<answer>1</answer>", 0.0),
            ("<think>a</think><answer>1", 0.0),
            ("<answer>1</answer><think>a</think>", 0.0),
            ("<think>a</think><answer>1<answer>2</answer>", 0.0),
            ("<think>a</think><answer>1</answer></answer>", 0.0),
            ("", 0.0),
        ];
        for (s, want) in cases {
            assert_eq!(format_reward(s, ThinkRule::Required), want, "{s:?}");
        }
    }

    #[test]
    fn optional_and_prefilled() {
        assert_eq!(
            split_blocks("<answer>10198</answer>", ThinkRule::Optional),
            Some(Blocks {
                think: None,
                answer: "10198"
            })
        );
        assert_eq!(
            format_reward("<think>x</think><answer>1</answer>", ThinkRule::Optional),
            1.0
        );
        assert_eq!(
            format_reward("<answer>1</answer><answer>1</answer>", ThinkRule::Optional),
            0.0
        );
        assert_eq!(
            format_reward("work</think><answer>1</answer>", ThinkRule::Prefilled),
            1.0
        );
        assert_eq!(
            format_reward(
                "<think>work</think><answer>1</answer>",
                ThinkRule::Prefilled
            ),
            0.0
        );
    }
}
