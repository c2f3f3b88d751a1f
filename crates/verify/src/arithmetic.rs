//! Exact-integer answers for the demo's synthetic tasks (`Q:4821+5377=` → `10198`).
//!
//! The reward is 1 only when the completion is well formed (an answer block, optionally after a
//! think block; see `format.rs`) and the answer block holds exactly the integer: no sign other
//! than a leading `-`, no separators, no leading zeros, no words. It does not parse
//! expressions; `5377+4821` is not an answer.

use crate::format::{split_blocks, ThinkRule};

/// The canonical decimal form of an integer string (`-0` → `0`, `007` → `7`), or `None` when
/// `s` is not an integer. Digit strings of any length are accepted; nothing is parsed into a
/// machine integer, so large answers compare exactly.
pub fn canonical_integer(s: &str) -> Option<String> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    Some(match (trimmed.is_empty(), neg) {
        (true, _) => "0".to_string(),
        (false, true) => format!("-{trimmed}"),
        (false, false) => trimmed.to_string(),
    })
}

/// A completion's answer is *exactly* the integer: what [`canonical_integer`] would produce.
fn is_exact_form(answer: &str) -> bool {
    canonical_integer(answer).is_some_and(|c| c == answer)
}

/// 1.0 for a well-formed completion whose answer is exactly `gold`; 0.0 otherwise; `None` when
/// `gold` is not an integer (the reference cannot be judged against).
pub fn arithmetic_reward(completion: &str, gold: &str, rule: ThinkRule) -> Option<f32> {
    let gold = canonical_integer(gold)?;
    let ok = split_blocks(completion, rule).is_some_and(|b| {
        let answer = b.answer.trim();
        is_exact_form(answer) && answer == gold
    });
    Some(if ok { 1.0 } else { 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_well_formed_only() {
        let opt = ThinkRule::Optional;
        let cases: &[(&str, &str, Option<f32>)] = &[
            ("<answer>10198</answer>", "10198", Some(1.0)),
            (
                "<think>1+7=8 carry 1</think><answer>10198</answer>",
                "10198",
                Some(1.0),
            ),
            ("<answer> 10198 </answer>", "10198", Some(1.0)),
            ("<answer>-42</answer>", "-42", Some(1.0)),
            ("<answer>0</answer>", "-0", Some(1.0)),
            ("<answer>10,198</answer>", "10198", Some(0.0)),
            ("<answer>010198</answer>", "10198", Some(0.0)),
            ("<answer>+10198</answer>", "10198", Some(0.0)),
            ("<answer>10198.0</answer>", "10198", Some(0.0)),
            ("<answer>10198 </answer> ok", "10198", Some(0.0)),
            ("<answer>10197</answer>", "10198", Some(0.0)),
            (
                "<answer>10198</answer><answer>10198</answer>",
                "10198",
                Some(0.0),
            ),
            ("<answer>10198 or 10199</answer>", "10198", Some(0.0)),
            ("10198", "10198", Some(0.0)),
            ("<think></think><answer>10198</answer>", "10198", Some(0.0)),
            ("<answer>4821+5377</answer>", "10198", Some(0.0)),
            ("<answer>10198</answer>", "ten", None),
            (
                "<answer>123456789012345678901234567890123456789012345</answer>",
                "123456789012345678901234567890123456789012345",
                Some(1.0),
            ),
        ];
        for &(c, g, want) in cases {
            assert_eq!(arithmetic_reward(c, g, opt), want, "{c:?} vs {g:?}");
        }
        assert_eq!(
            arithmetic_reward("<answer>10198</answer>", "10198", ThinkRule::Required),
            Some(0.0)
        );
    }
}
