//! Language consistency (R1's third reward): the share of the reasoning written in the target
//! script.
//!
//! Letters of the think block are classified by Unicode script; the reward is the fraction in
//! the target script. Digits, punctuation and mathematics carry no language and are ignored, as
//! are the letters of LaTeX commands (`\frac`), which would otherwise count as Latin in any
//! language. This is a script test, not a language identifier: English and French are both
//! Latin. It does not check the answer.

use serde::{Deserialize, Serialize};

use crate::format::ThinkRule;

/// Writing systems told apart by [`script_of`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Script {
    Latin,
    Cyrillic,
    Greek,
    /// Han, Hiragana, Katakana and Hangul together: Chinese, Japanese and Korean reasoning.
    Cjk,
    Arabic,
    Hebrew,
    Devanagari,
    Thai,
}

/// The script of a letter, or `None` for non-letters and scripts not listed.
pub fn script_of(c: char) -> Option<Script> {
    if !c.is_alphabetic() {
        return None;
    }
    Some(match c as u32 {
        0x41..=0x5A | 0x61..=0x7A | 0xC0..=0x24F | 0x1E00..=0x1EFF => Script::Latin,
        0x370..=0x3FF | 0x1F00..=0x1FFF => Script::Greek,
        0x400..=0x52F => Script::Cyrillic,
        0x590..=0x5FF => Script::Hebrew,
        0x600..=0x6FF | 0x750..=0x77F => Script::Arabic,
        0x900..=0x97F => Script::Devanagari,
        0xE00..=0xE7F => Script::Thai,
        0x1100..=0x11FF
        | 0x3040..=0x30FF
        | 0x3130..=0x318F
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xAC00..=0xD7AF
        | 0xF900..=0xFAFF
        | 0x20000..=0x2FA1F => Script::Cjk,
        _ => return None,
    })
}

/// Share of classified letters of `text` in `target`, or `None` when it has no such letters.
pub fn script_share(text: &str, target: Script) -> Option<f32> {
    let (mut hit, mut total) = (0u64, 0u64);
    let mut in_command = false;
    for c in text.chars() {
        if c == '\\' {
            in_command = true;
            continue;
        }
        if in_command && c.is_ascii_alphabetic() {
            continue;
        }
        in_command = false;
        if let Some(s) = script_of(c) {
            total += 1;
            hit += u64::from(s == target);
        }
    }
    (total > 0).then(|| hit as f32 / total as f32)
}

/// The think block of a response, found leniently (the first `<think>` — or the start, when
/// prefilled — up to the first `</think>`): the language reward should not depend on the format
/// reward's verdict.
pub fn think_block(completion: &str, rule: ThinkRule) -> Option<&str> {
    let start = match rule {
        ThinkRule::Prefilled => 0,
        ThinkRule::Required | ThinkRule::Optional => completion.find("<think>")? + "<think>".len(),
    };
    let rest = &completion[start..];
    Some(&rest[..rest.find("</think>")?])
}

/// Share of the reasoning in `target`; `None` (cannot judge) without a think block or letters.
pub fn language_reward(completion: &str, target: Script, rule: ThinkRule) -> Option<f32> {
    script_share(think_block(completion, rule)?, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares() {
        let r = |s: &str, t| language_reward(s, t, ThinkRule::Required);
        assert_eq!(
            r(
                "<think>add the tens</think><answer>1</answer>",
                Script::Latin
            ),
            Some(1.0)
        );
        assert_eq!(
            r("<think>先加十位</think><answer>1</answer>", Script::Latin),
            Some(0.0)
        );
        assert_eq!(r("<think>先加十位</think>", Script::Cjk), Some(1.0));
        assert_eq!(r("<think>ab где</think>", Script::Cyrillic), Some(0.6));
        assert_eq!(
            r("<think>\\frac{1}{2} = 0.5 это</think>", Script::Cyrillic),
            Some(1.0)
        );
        assert_eq!(r("<think>1 + 2 = 3</think>", Script::Latin), None);
        assert_eq!(r("<answer>1</answer>", Script::Latin), None);
        assert_eq!(
            language_reward(
                "so x</think><answer>1</answer>",
                Script::Latin,
                ThinkRule::Prefilled
            ),
            Some(1.0)
        );
    }
}
