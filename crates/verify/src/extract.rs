//! Finding the final answer inside a full model response.
//!
//! Two presets, written `extract = "strict"` or `extract = "lenient"` in a `[[reward]]` table
//! (or `--extract` on the command line), or a table of [`ExtractConfig`] fields:
//!
//! - **strict** (the default, for training): an `<answer>…</answer>` block is authoritative;
//!   otherwise the last explicit marker in the text wins among the last `\boxed{…}` group,
//!   "final answer is …" / "the answer is …" and GSM8K's `#### 42`. A response with no marker
//!   has no answer, so mentioning the right number somewhere earns nothing.
//! - **lenient** (Math-Verify's default behaviour, for evaluating): the same markers, then the
//!   last LaTeX expression (`$…$`, `$$…$$`, `\(…\)`, `\[…\]`), then the last number anywhere;
//!   a candidate that does not parse gives way to the next one.
//!
//! Boxes written next to each other (`\boxed{1}, \boxed{2}`) are read as one list. The
//! scanners live in `markers.rs`; this file picks among them and does not judge whether the
//! answer is right.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::expr::{parse_answer, Node};
use crate::markers::{box_group, gsm8k, join_spans, last_number, latex_spans, phrase};
pub use crate::markers::{boxed, Pick, MAX_ANSWER_SPAN, MAX_BOX_TRIES};

/// LaTeX spans tried, from the last one back, before the lenient reader gives up.
const MAX_SPAN_TRIES: usize = 8;

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
    Latex,
    LastNumber,
}

/// An answer found in a completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extracted<'a> {
    /// The answer text, trimmed, with surrounding `$…$` removed; owned when several boxes
    /// were joined or a number was normalised.
    pub text: Cow<'a, str>,
    pub source: Source,
}

/// The named extraction presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtractMode {
    /// Explicit markers only: answer tags, boxes, answer phrases, `####` (training).
    Strict,
    /// Math-Verify's reading: markers, then the last LaTeX expression, then the last number.
    Lenient,
}

impl fmt::Display for ExtractMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExtractMode::Strict => "strict",
            ExtractMode::Lenient => "lenient",
        })
    }
}

/// Which answer sources are tried. The default is the strict preset (see the module doc).
/// In a config it is either a preset name (`extract = "lenient"`) or a table of these fields
/// (`extract = { last_number = true }`; missing fields take the strict preset's values).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields, default)]
pub struct ExtractConfig {
    /// Read `<answer>…</answer>`; when present it is authoritative (other sources are only
    /// looked for inside it).
    pub answer_tag: bool,
    pub multiple_answers: MultipleAnswers,
    /// Accept an `<answer>` block cut off before `</answer>` (generation often stops at the
    /// closing tag); the format reward still withholds its credit.
    pub allow_unclosed_tag: bool,
    /// Read `\boxed{…}` / `\fbox{…}` (`last`: the last group of adjacent boxes); `None`
    /// switches it off.
    pub boxed: Option<Pick>,
    /// Read "final answer is …", "final answer: … is …", "the answer is …".
    pub phrase: bool,
    /// Read GSM8K's `#### 42`.
    pub gsm8k: bool,
    /// Fall back to the last LaTeX expression (`$…$`, `$$…$$`, `\(…\)`, `\[…\]`).
    pub latex: bool,
    /// Fall back to the last number anywhere in the text.
    pub last_number: bool,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        ExtractConfig::strict()
    }
}

impl From<ExtractMode> for ExtractConfig {
    fn from(mode: ExtractMode) -> Self {
        match mode {
            ExtractMode::Strict => ExtractConfig::strict(),
            ExtractMode::Lenient => ExtractConfig::lenient(),
        }
    }
}

impl ExtractConfig {
    /// Explicit markers only (the default, for training rewards).
    pub fn strict() -> Self {
        ExtractConfig {
            answer_tag: true,
            multiple_answers: MultipleAnswers::Reject,
            allow_unclosed_tag: true,
            boxed: Some(Pick::Last),
            phrase: true,
            gsm8k: true,
            latex: false,
            last_number: false,
        }
    }

    /// Math-Verify's reading: markers, then the last LaTeX expression, then the last number,
    /// and the last of several answer blocks (for evaluation, not for training rewards: it
    /// rewards a response that merely ends on the right number).
    pub fn lenient() -> Self {
        ExtractConfig {
            multiple_answers: MultipleAnswers::Last,
            latex: true,
            last_number: true,
            ..Self::strict()
        }
    }

    /// Whether a candidate that does not parse gives way to the next source.
    fn falls_through(&self) -> bool {
        self.latex || self.last_number
    }
}

// The derive above (`remote = "Self"`) generates inherent `serialize`/`deserialize` for the
// table form; these trait impls add the preset names on top.
impl Serialize for ExtractConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ExtractConfig::serialize(self, s)
    }
}

/// `extract = "lenient"` or `extract = { … }`: a preset name or a table.
impl<'de> Deserialize<'de> for ExtractConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ExtractConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"strict\", \"lenient\" or a table of extraction fields")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ExtractConfig, E> {
                match v {
                    "strict" => Ok(ExtractConfig::strict()),
                    "lenient" => Ok(ExtractConfig::lenient()),
                    other => Err(E::unknown_variant(other, &["strict", "lenient"])),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ExtractConfig, A::Error> {
                ExtractConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Extracts the final answer from a completion, or `None` when no configured source holds one.
pub fn extract<'a>(completion: &'a str, cfg: &ExtractConfig) -> Option<Extracted<'a>> {
    if cfg.answer_tag {
        if let Some(found) = answer_tag(completion, cfg) {
            let inner = found?;
            return match markers(inner, cfg) {
                Some((text, _)) => accept(text, Source::AnswerTag),
                None => accept(Cow::Borrowed(inner), Source::AnswerTag),
            };
        }
    }
    if let Some((text, source)) = markers(completion, cfg) {
        let found = accept(text, source);
        // A phrase's extent is a guess; a box or `####` delimits its answer, so an unparsable
        // one still stands (it can match by its text).
        let guessed = source == Source::Phrase && cfg.falls_through();
        if found.as_ref().is_some_and(|e| !guessed || parses(&e.text)) {
            return found;
        }
    }
    // As in Math-Verify, a LaTeX expression and a bare number rank alike: the one that ends
    // later in the text wins.
    let latex = cfg.latex.then(|| last_latex(completion)).flatten();
    let number = cfg.last_number.then(|| last_number(completion)).flatten();
    match (latex, number) {
        (Some((l_end, l)), Some((n_end, _))) if l_end >= n_end => Some(l),
        (_, Some((_, n))) => accept(n, Source::LastNumber),
        (Some((_, l)), None) => Some(l),
        (None, None) => None,
    }
}

/// The last explicit marker in the text: a box group, an answer phrase or `####`.
fn markers<'a>(s: &'a str, cfg: &ExtractConfig) -> Option<(Cow<'a, str>, Source)> {
    let mut best: Option<(usize, Cow<'a, str>, Source)> = None;
    fn consider<'a>(
        best: &mut Option<(usize, Cow<'a, str>, Source)>,
        pos: usize,
        text: Cow<'a, str>,
        source: Source,
    ) {
        if best.as_ref().is_none_or(|(p, _, _)| pos > *p) {
            *best = Some((pos, text, source));
        }
    }
    match cfg.boxed {
        Some(Pick::First) => {
            if let Some(b) = boxed(s, Pick::First) {
                return Some((Cow::Borrowed(b), Source::Boxed));
            }
        }
        Some(Pick::Last) => {
            if let Some((pos, text)) = box_group(s) {
                consider(&mut best, pos, text, Source::Boxed);
            }
        }
        None => {}
    }
    let boxed_found = best.is_some();
    if cfg.phrase {
        if let Some((pos, text)) = phrase(s) {
            // Prose after a phrase ("the answer is correct, I hope") never outranks a box: a
            // phrase competing with one must open with mathematics, not a word.
            let prose = text.starts_with(|c: char| c.is_alphabetic())
                || matches!(parse_answer(text), Ok(Node::Text(_)) | Err(_));
            let usable = !(text.is_empty() || boxed_found && prose);
            if usable {
                consider(&mut best, pos, Cow::Borrowed(text), Source::Phrase);
            }
        }
    }
    if cfg.gsm8k {
        if let Some((pos, text)) = gsm8k(s) {
            consider(&mut best, pos, Cow::Borrowed(text), Source::Gsm8k);
        }
    }
    best.map(|(_, text, source)| (text, source))
}

/// The last LaTeX expression that parses: the trailing spans joined when only `,`/and/or
/// separate them, else each span from the last one back, else the last span as written.
/// With where it ends.
fn last_latex(s: &str) -> Option<(usize, Extracted<'_>)> {
    let spans = latex_spans(s, MAX_SPAN_TRIES);
    let last_end = spans.last()?.end;
    if let Some(joined) = join_spans(s, &spans) {
        if let Some(e) = accept(joined, Source::Latex).filter(|e| parses(&e.text)) {
            return Some((last_end, e));
        }
    }
    let parsed = spans.iter().rev().find_map(|sp| {
        accept(Cow::Borrowed(sp.content), Source::Latex)
            .filter(|e| parses(&e.text))
            .map(|e| (sp.end, e))
    });
    // No span parses: the last one as written, which can still match by its text.
    parsed.or_else(|| {
        let sp = spans.last()?;
        accept(Cow::Borrowed(sp.content), Source::Latex).map(|e| (sp.end, e))
    })
}

fn parses(text: &str) -> bool {
    parse_answer(text).is_ok()
}

fn accept(text: Cow<'_, str>, source: Source) -> Option<Extracted<'_>> {
    let text = match text {
        Cow::Borrowed(t) => Cow::Borrowed(strip_math_delims(t.trim())),
        Cow::Owned(t) => Cow::Owned(strip_math_delims(t.trim()).to_string()),
    };
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

/// The final answer of a reference (gold) answer: its box group or `####` when it has one,
/// else the whole string when it parses, else what the lenient reader finds, else the string.
/// A reference is trusted, so reading it generously rewards nothing it should not.
pub fn reference_answer(gold: &str) -> Cow<'_, str> {
    const MARKERS: ExtractConfig = ExtractConfig {
        answer_tag: false,
        multiple_answers: MultipleAnswers::Last,
        allow_unclosed_tag: false,
        boxed: Some(Pick::Last),
        phrase: false,
        gsm8k: true,
        latex: false,
        last_number: false,
    };
    if let Some(e) = extract(gold, &MARKERS) {
        return e.text;
    }
    let whole = strip_math_delims(gold.trim());
    if parses(whole) {
        return Cow::Borrowed(whole);
    }
    // A worked solution without a box: its answer phrase or last formula, never a stray
    // number (an unparsable formula such as `F_n = \sum …` stays whole, compared as text).
    let prose = ExtractConfig {
        last_number: false,
        ..ExtractConfig::lenient()
    };
    match extract(gold, &prose) {
        Some(e) if parses(&e.text) => e.text,
        _ => Cow::Borrowed(whole),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Option<String> {
        extract(s, &ExtractConfig::default()).map(|e| e.text.into_owned())
    }

    fn lenient(s: &str) -> Option<String> {
        extract(s, &ExtractConfig::lenient()).map(|e| e.text.into_owned())
    }

    #[test]
    fn sources_in_priority_order() {
        let cases: &[(&str, Option<&str>)] = &[
            ("<think>2+2</think><answer>4</answer>", Some("4")),
            ("<answer>$\\frac{1}{2}$</answer>", Some("\\frac{1}{2}")),
            ("<answer>so \\boxed{7}</answer>", Some("7")),
            (
                "\\boxed{1} then after a long detour we get \\boxed{\\frac{a}{b}}",
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
            ("\\boxed{1}, \\boxed{2}", Some("1, 2")),
            ("\\boxed{42}\n\nThe answer is correct, I hope.", Some("42")),
        ];
        for (s, want) in cases {
            assert_eq!(ex(s).as_deref(), *want, "{s}");
        }
    }

    #[test]
    fn gsm8k_markers_and_last_marker_wins() {
        assert_eq!(ex("so **#### 624**").as_deref(), Some("624"));
        assert_eq!(ex("so #### 208**").as_deref(), Some("208"));
        assert_eq!(ex("so `#### 105`").as_deref(), Some("105"));
        assert_eq!(
            ex("The answer is 253. Checking again...\n#### 247").as_deref(),
            Some("247")
        );
        assert_eq!(
            ex("#### 247\nWait, the answer is 253.").as_deref(),
            Some("253")
        );
        assert_eq!(
            ex("\\boxed{5}. So the final answer is 6.").as_deref(),
            Some("6")
        );
        assert_eq!(
            ex("The final answer is $\\boxed{5}$.").as_deref(),
            Some("5")
        );
    }

    #[test]
    fn tag_is_authoritative_over_boxes_in_reasoning() {
        assert_eq!(
            ex("<think>\\boxed{5}</think><answer>6</answer>").as_deref(),
            Some("6")
        );
    }

    #[test]
    fn lenient_reads_latex_then_numbers() {
        let cases: &[(&str, Option<&str>)] = &[
            ("Answer \\[ 9 \\]", Some("9")),
            ("Answer \\( (9+1) \\)", Some("(9+1)")),
            ("so $x = 2$ and $y = 3$.", Some("x = 2, y = 3")),
            ("so $x = 2$ and then $y = 3$.", Some("y = 3")),
            ("We find that $x \\neq 3$.", Some("x \\neq 3")),
            ("so it is -1,250.5 apples", Some("-1250.5")),
            (
                "Final Answer: The volume of $ABCD$ is 120. I hope it is correct.",
                Some("120"),
            ),
            ("<answer>1</answer><answer>2</answer>", Some("2")),
            ("nothing here", None),
        ];
        for (s, want) in cases {
            assert_eq!(lenient(s).as_deref(), *want, "{s}");
        }
        assert_eq!(ex("Answer \\[ 9 \\]"), None);
    }

    #[test]
    fn presets_and_tables_deserialize() {
        #[derive(Deserialize)]
        struct T {
            extract: ExtractConfig,
        }
        let t: T = toml::from_str("extract = \"lenient\"").unwrap();
        assert_eq!(t.extract, ExtractConfig::lenient());
        let t: T = toml::from_str("extract = \"strict\"").unwrap();
        assert_eq!(t.extract, ExtractConfig::strict());
        let t: T = toml::from_str("extract = { last_number = true }").unwrap();
        assert!(t.extract.last_number && t.extract.phrase);
        let err = toml::from_str::<T>("extract = \"loose\"")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown variant `loose`"), "{err}");
        let err = toml::from_str::<T>("extract = { bogus = 1 }")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
        let back = toml::to_string(&ExtractConfig::lenient()).unwrap();
        assert!(back.contains("latex = true"), "{back}");
    }

    #[test]
    fn configurable_choices() {
        let first = ExtractConfig {
            boxed: Some(Pick::First),
            ..ExtractConfig::default()
        };
        assert_eq!(
            extract("\\boxed{1} \\boxed{2}", &first).map(|e| e.text),
            Some(Cow::Borrowed("1"))
        );
    }

    #[test]
    fn reference_answers() {
        assert_eq!(reference_answer("$9$"), "9");
        assert_eq!(reference_answer("so \\boxed{1} and \\boxed{-2}."), "1, -2");
        assert_eq!(reference_answer("Natalia sold 48.\n#### 72"), "72");
        assert_eq!(reference_answer("$(p,q)=(3,2)$"), "(p,q)=(3,2)");
    }

    #[test]
    fn many_boxes_and_deep_braces_are_bounded() {
        let many = "\\boxed{".repeat(10_000);
        assert_eq!(ex(&many), None);
        let deep = format!("\\boxed{{{}}}", "{".repeat(1_000_000));
        assert_eq!(ex(&deep), None);
        assert_eq!(lenient(&"$".repeat(100_001)), None);
    }
}
