//! Finding the final answer inside a full model response.
//!
//! Sources, in priority order: an `<answer>…</answer>` block; `\boxed{…}` / `\fbox{…}` (braces
//! may nest); "final answer is …" / "the answer is …"; GSM8K's `#### 42`; and, only when
//! switched on, the last number in the text. Each is a field of [`ExtractConfig`], whose default
//! is what a maths RL run wants (see its doc). This file returns slices of the completion; it
//! does not judge whether the answer is right.
//!
//! Work is linear in the completion length plus at most [`MAX_BOX_TRIES`] ×
//! [`MAX_ANSWER_SPAN`] bytes of brace matching, however many boxes the text holds.

use serde::{Deserialize, Serialize};

/// Longest answer span (bytes) accepted from any source; longer spans are not a final answer.
pub const MAX_ANSWER_SPAN: usize = 1000;
/// Unclosed or oversized `\boxed{` candidates tried before giving up.
pub const MAX_BOX_TRIES: usize = 8;

/// Which of several candidates wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pick {
    First,
    Last,
}

/// What to do when the response holds more than one `<answer>` block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MultipleAnswers {
    /// No answer at all: several answer blocks are a way to hedge, so they earn nothing.
    Reject,
    First,
    Last,
}

/// Where an extracted answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    AnswerTag,
    Boxed,
    Phrase,
    Gsm8k,
    LastNumber,
}

/// An answer found in a completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extracted<'a> {
    /// The answer text, trimmed, with surrounding `$…$` removed.
    pub text: &'a str,
    pub source: Source,
}

/// Which answer sources are tried. The default suits maths RL: tags, the last box, answer
/// phrases and `####` are read; several answer blocks are rejected; the last-number fallback is
/// off, because it rewards a response that merely mentions the right number somewhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtractConfig {
    /// Read `<answer>…</answer>`; when present it is authoritative (other sources are only
    /// looked for inside it).
    pub answer_tag: bool,
    pub multiple_answers: MultipleAnswers,
    /// Accept an `<answer>` block cut off before `</answer>` (generation often stops at the
    /// closing tag); the format reward still withholds its credit.
    pub allow_unclosed_tag: bool,
    /// Read `\boxed{…}` / `\fbox{…}`; `None` switches it off.
    pub boxed: Option<Pick>,
    /// Read "final answer is …", "final answer: …", "the answer is …".
    pub phrase: bool,
    /// Read GSM8K's `#### 42`.
    pub gsm8k: bool,
    /// Fall back to the last number anywhere in the text.
    pub last_number: bool,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        ExtractConfig {
            answer_tag: true,
            multiple_answers: MultipleAnswers::Reject,
            allow_unclosed_tag: true,
            boxed: Some(Pick::Last),
            phrase: true,
            gsm8k: true,
            last_number: false,
        }
    }
}

impl ExtractConfig {
    /// Only explicit answer markers: tags and boxes.
    pub fn strict() -> Self {
        ExtractConfig {
            allow_unclosed_tag: false,
            phrase: false,
            gsm8k: false,
            ..Self::default()
        }
    }

    /// Everything, including the last-number fallback and the last of several answer blocks
    /// (for evaluating base models, not for training rewards).
    pub fn lenient() -> Self {
        ExtractConfig {
            multiple_answers: MultipleAnswers::Last,
            last_number: true,
            ..Self::default()
        }
    }
}

/// Extracts the final answer from a completion, or `None` when no configured source holds one.
pub fn extract<'a>(completion: &'a str, cfg: &ExtractConfig) -> Option<Extracted<'a>> {
    if cfg.answer_tag {
        if let Some(found) = answer_tag(completion, cfg) {
            let inner = found?;
            let text = inner_answer(inner, cfg).unwrap_or(inner);
            return accept(text, Source::AnswerTag);
        }
    }
    if let Some(pick) = cfg.boxed {
        if let Some(b) = boxed(completion, pick) {
            return accept(b, Source::Boxed);
        }
    }
    if cfg.phrase {
        if let Some(p) = phrase(completion) {
            return accept(p, Source::Phrase);
        }
    }
    if cfg.gsm8k {
        if let Some(i) = completion.rfind("####") {
            let rest = &completion[i + 4..];
            return accept(rest.lines().next().unwrap_or(""), Source::Gsm8k);
        }
    }
    if cfg.last_number {
        return last_number(completion).and_then(|n| accept(n, Source::LastNumber));
    }
    None
}

fn accept(text: &str, source: Source) -> Option<Extracted<'_>> {
    let text = strip_math_delims(text.trim());
    (!text.is_empty() && text.len() <= MAX_ANSWER_SPAN).then_some(Extracted { text, source })
}

fn strip_math_delims(s: &str) -> &str {
    let mut s = s.trim();
    for (open, close) in [("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")] {
        if s.len() >= open.len() + close.len() && s.starts_with(open) && s.ends_with(close) {
            s = s[open.len()..s.len() - close.len()].trim();
            break;
        }
    }
    s
}

/// Inside an answer block, a box or answer phrase still marks the answer proper.
fn inner_answer<'a>(inner: &'a str, cfg: &ExtractConfig) -> Option<&'a str> {
    if let Some(pick) = cfg.boxed {
        if let Some(b) = boxed(inner, pick) {
            return Some(b);
        }
    }
    if cfg.phrase {
        return phrase(inner);
    }
    None
}

/// `None`: no tag at all (try other sources). `Some(None)`: tags present but unusable.
fn answer_tag<'a>(s: &'a str, cfg: &ExtractConfig) -> Option<Option<&'a str>> {
    const OPEN: &str = "<answer>";
    const CLOSE: &str = "</answer>";
    let first = s.find(OPEN)?;
    let last = s.rfind(OPEN).unwrap_or(first);
    let open = if first == last {
        first
    } else {
        match cfg.multiple_answers {
            MultipleAnswers::Reject => return Some(None),
            MultipleAnswers::First => first,
            MultipleAnswers::Last => last,
        }
    };
    let body = &s[open + OPEN.len()..];
    Some(match body.find(CLOSE) {
        Some(end) => Some(&body[..end]),
        // An unclosed block is only acceptable when it is the last thing in the response.
        None if cfg.allow_unclosed_tag && open == last => Some(body),
        None => None,
    })
}

/// Content of the chosen `\boxed{…}`/`\fbox{…}`, with nested braces matched.
pub fn boxed(s: &str, pick: Pick) -> Option<&str> {
    let mut lo = 0;
    let mut hi = s.len();
    for _ in 0..MAX_BOX_TRIES {
        let window = &s[lo..hi];
        let pos = match pick {
            Pick::Last => [window.rfind("\\boxed"), window.rfind("\\fbox")]
                .into_iter()
                .flatten()
                .max()?,
            Pick::First => [window.find("\\boxed"), window.find("\\fbox")]
                .into_iter()
                .flatten()
                .min()?,
        } + lo;
        let cmd_len = if s[pos..].starts_with("\\boxed") {
            6
        } else {
            5
        };
        if let Some(content) = box_content(&s[pos + cmd_len..]) {
            return Some(content);
        }
        match pick {
            Pick::Last => hi = pos,
            Pick::First => lo = pos + cmd_len,
        }
    }
    None
}

fn box_content(after: &str) -> Option<&str> {
    let b = after.as_bytes();
    match b.first()? {
        b'{' => {
            let mut depth = 0usize;
            for (i, &c) in b.iter().enumerate().take(MAX_ANSWER_SPAN + 2) {
                match c {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(&after[1..i]);
                        }
                    }
                    _ => {}
                }
            }
            None
        }
        // `\boxed 5`: one token up to whitespace or `$`.
        b' ' => {
            let rest = after.trim_start();
            let end = rest.find([' ', '$', '\n']).unwrap_or(rest.len());
            (end > 0).then(|| &rest[..end])
        }
        _ => None,
    }
}

/// The text after the last answer phrase, up to the end of its line, without a final full stop.
fn phrase(s: &str) -> Option<&str> {
    const PHRASES: [&str; 3] = ["final answer is", "final answer:", "the answer is"];
    // ASCII lower-casing keeps byte offsets identical to the original.
    let lower = s.to_ascii_lowercase();
    let (pos, len) = PHRASES
        .iter()
        .filter_map(|p| lower.rfind(p).map(|i| (i, p.len())))
        .max_by_key(|&(i, _)| i)?;
    let rest = s[pos + len..].trim_start_matches([' ', ':', '\t']);
    let rest = rest.strip_prefix("**").unwrap_or(rest);
    let line = rest.lines().next().unwrap_or("");
    let line = if let Some(inner) = line.strip_prefix('$') {
        // Cut at the closing `$`, so "is $5$ dollars." yields `5`.
        match closing_dollar(inner) {
            Some(end) => &inner[..end],
            None => inner,
        }
    } else {
        line
    };
    let line = line.trim().trim_end_matches("**").trim_end();
    let line = line.strip_suffix('.').unwrap_or(line);
    Some(line)
}

/// Byte offset of the first `$` not escaped as `\$` (a currency sign inside the formula).
fn closing_dollar(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len()).find(|&i| b[i] == b'$' && (i == 0 || b[i - 1] != b'\\'))
}

/// The last number-like run: optional `-`, digits with `,` groups and one `.`.
fn last_number(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let end = b.iter().rposition(u8::is_ascii_digit)? + 1;
    let mut start = end;
    while start > 0 {
        let c = b[start - 1];
        let next_is_digit = b.get(start).is_some_and(u8::is_ascii_digit);
        if c.is_ascii_digit() || ((c == b'.' || c == b',') && next_is_digit) {
            start -= 1;
        } else {
            break;
        }
    }
    if start > 0 && b[start - 1] == b'-' {
        start -= 1;
    }
    Some(s[start..end].trim_start_matches(','))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Option<&str> {
        extract(s, &ExtractConfig::default()).map(|e| e.text)
    }

    #[test]
    fn sources_in_priority_order() {
        let cases: &[(&str, Option<&str>)] = &[
            ("<think>2+2</think><answer>4</answer>", Some("4")),
            ("<answer>$\\frac{1}{2}$</answer>", Some("\\frac{1}{2}")),
            ("<answer>so \\boxed{7}</answer>", Some("7")),
            (
                "\\boxed{1} then \\boxed{\\frac{a}{b}}",
                Some("\\frac{a}{b}"),
            ),
            (
                "\\boxed{\\frac{1}{\\sqrt{2}}}.",
                Some("\\frac{1}{\\sqrt{2}}"),
            ),
            ("\\fbox{12}", Some("12")),
            ("\\boxed 5 is it", Some("5")),
            ("Thus, the final answer is $42$. I hope", Some("42")),
            ("The answer is: 3.5.", Some("3.5")),
            ("the final answer is $\\$18$.", Some("\\$18")),
            ("blah\n#### 1,234\n", Some("1,234")),
            ("I think it is 42", None),
            ("<answer>1</answer><answer>2</answer>", None),
            ("<think>x</think><answer>17", Some("17")),
            ("\\boxed{unclosed", None),
        ];
        for (s, want) in cases {
            assert_eq!(ex(s), *want, "{s}");
        }
    }

    #[test]
    fn tag_is_authoritative_over_boxes_in_reasoning() {
        assert_eq!(ex("<think>\\boxed{5}</think><answer>6</answer>"), Some("6"));
    }

    #[test]
    fn configurable_choices() {
        let first = ExtractConfig {
            boxed: Some(Pick::First),
            ..ExtractConfig::default()
        };
        assert_eq!(
            extract("\\boxed{1} \\boxed{2}", &first).map(|e| e.text),
            Some("1")
        );
        let lenient = ExtractConfig::lenient();
        assert_eq!(
            extract("so it is -1,250.5 apples", &lenient).map(|e| e.text),
            Some("-1,250.5")
        );
        assert_eq!(
            extract("<answer>1</answer><answer>2</answer>", &lenient).map(|e| e.text),
            Some("2")
        );
        let strict = ExtractConfig::strict();
        assert_eq!(extract("the answer is 4", &strict), None);
    }

    #[test]
    fn many_boxes_and_deep_braces_are_bounded() {
        let many = "\\boxed{".repeat(10_000);
        assert_eq!(ex(&many), None);
        let deep = format!("\\boxed{{{}}}", "{".repeat(1_000_000));
        assert_eq!(ex(&deep), None);
    }
}
