//! Locating answer candidates in a response: `\boxed{}` groups, answer phrases, GSM8K's
//! `####`, LaTeX math spans and bare numbers. Each scanner returns where its candidate starts
//! (so `extract.rs` can let the last marker in the text win) and the candidate text; none of
//! them decides which source is used or whether the answer is right.
//!
//! Every scanner is linear in the response length: boxes are brace-matched at most
//! [`MAX_BOX_TRIES`] times over at most [`MAX_ANSWER_SPAN`] bytes each, and the LaTeX-span scan
//! never searches the same text twice for a closing delimiter.

use std::borrow::Cow;

/// Longest answer span (bytes) accepted from any source; longer spans are not a final answer.
pub const MAX_ANSWER_SPAN: usize = 1000;
/// Unclosed or oversized `\boxed{` candidates tried before giving up.
pub const MAX_BOX_TRIES: usize = 8;
/// Most boxes (or LaTeX spans) joined into one answer list.
pub const MAX_JOINED: usize = 6;

/// Which of several candidates wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pick {
    First,
    Last,
}

/// A box found in the text: where its command starts and ends, and its content.
struct Box<'a> {
    start: usize,
    end: usize,
    content: &'a str,
}

/// Content of the chosen `\boxed{…}`/`\fbox{…}`, with nested braces matched.
pub fn boxed(s: &str, pick: Pick) -> Option<&str> {
    find_box(s, pick, s.len()).map(|b| b.content)
}

fn find_box(s: &str, pick: Pick, limit: usize) -> Option<Box<'_>> {
    let mut lo = 0;
    let mut hi = limit;
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
        if let Some((content, len)) = box_content(&s[pos + cmd_len..]) {
            return Some(Box {
                start: pos,
                end: pos + cmd_len + len,
                content,
            });
        }
        match pick {
            Pick::Last => hi = pos,
            Pick::First => lo = pos + cmd_len,
        }
    }
    None
}

/// The box content and how many bytes after the command the box spans.
fn box_content(after: &str) -> Option<(&str, usize)> {
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
                            return Some((&after[1..i], i + 1));
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
            let skipped = after.len() - rest.len();
            let end = rest.find([' ', '$', '\n']).unwrap_or(rest.len());
            (end > 0).then(|| (&rest[..end], skipped + end))
        }
        _ => None,
    }
}

/// The last box and the boxes written just before it as parts of the same answer
/// (`\boxed{1}, \boxed{2}`, `\boxed{k = 45} \quad \text{and} \quad \boxed{n = 2}`), joined
/// into one list, with where the first of them starts. A box counts as part of the answer
/// when less than 10 bytes separate it from the next, or less than 70 that include `,`, `;`,
/// "and" or "or" and it is not a repeat of the next: a box far back in the reasoning is an
/// intermediate result, not part of the final answer.
pub fn box_group(s: &str) -> Option<(usize, Cow<'_, str>)> {
    let last = find_box(s, Pick::Last, s.len())?;
    let mut parts = vec![last.content];
    let mut start = last.start;
    // Counted per box looked at, repeats included, so a run of identical boxes stays bounded.
    for _ in 1..MAX_JOINED {
        // A box enclosing the later one (`\boxed{… \fbox{…} …}`) is not its neighbour.
        let Some(prev) = find_box(s, Pick::Last, start).filter(|p| p.end <= start) else {
            break;
        };
        let between = &s[prev.end..start];
        let separated =
            between.contains([',', ';']) || has_word(between, "and") || has_word(between, "or");
        let next = parts[parts.len() - 1];
        let joins = between.len() < 10
            || (between.len() < 70 && separated && prev.content.trim() != next.trim());
        if !joins {
            break;
        }
        if prev.content.trim() != next.trim() {
            parts.push(prev.content);
        }
        start = prev.start;
    }
    if parts.len() == 1 {
        return Some((start, Cow::Borrowed(last.content)));
    }
    parts.reverse();
    Some((start, Cow::Owned(parts.join(", "))))
}

fn has_word(s: &str, word: &str) -> bool {
    s.split(|c: char| !c.is_ascii_alphabetic())
        .any(|w| w.eq_ignore_ascii_case(word))
}

/// The text after the last answer phrase ("final answer is", "final answer: … is",
/// "the answer is"), with where the phrase starts. The text runs to the end of its sentence,
/// cut at a closing `$` when it opens with one.
pub fn phrase(s: &str) -> Option<(usize, &str)> {
    const PHRASES: [&str; 2] = ["final answer", "the answer is"];
    // ASCII lower-casing keeps byte offsets identical to the original.
    let lower = s.to_ascii_lowercase();
    let (pos, len) = PHRASES
        .iter()
        .filter_map(|p| lower.rfind(p).map(|i| (i, p.len())))
        .max_by_key(|&(i, _)| i)?;
    let mut rest = s[pos + len..].trim_start_matches([' ', '*', '\t']);
    if lower[pos..].starts_with("final answer") {
        let after = rest.trim_start_matches([':', ' ', '*', '\t']);
        let low = after.to_ascii_lowercase();
        rest = if low.starts_with("is") {
            &after[2..]
        } else {
            // "Final Answer: The volume of $V$ is 120." reads the value after the first
            // " is " within the next 100 bytes of the line; otherwise the whole line.
            let line_len = low.find('\n').unwrap_or(low.len()).min(100);
            let head = &low[..floor_char(&low, line_len)];
            let mathy = |t: &str| {
                t.trim_start()
                    .starts_with(|c: char| c.is_ascii_digit() || "$\\-([{".contains(c))
            };
            head.match_indices(" is ")
                .map(|(i, _)| &after[i + 4..])
                .find(|t| mathy(t))
                .unwrap_or(after)
        };
    }
    Some((pos, sentence(rest)))
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// An answer written after a phrase or `####`: up to the end of the line or sentence, without
/// Markdown emphasis, backticks, a trailing full stop or "I hope it is correct".
fn sentence(rest: &str) -> &str {
    let rest = rest.trim_start_matches([' ', ':', '\t', '*', '`']);
    let line = rest.lines().next().unwrap_or("");
    let line = if let Some(inner) = line.strip_prefix('$') {
        // Cut at the closing `$`, so "is $5$ dollars." yields `5`.
        let inner = inner.strip_prefix('$').unwrap_or(inner);
        match closing_dollar(inner) {
            Some(end) => &inner[..end],
            None => inner,
        }
    } else {
        // A sentence ends at ". " (a decimal point is never followed by a space).
        line.find(". ").map_or(line, |i| &line[..i])
    };
    line.trim()
        .trim_end_matches(|c: char| matches!(c, '*' | '`' | '.') || c.is_whitespace())
}

/// Byte offset of the first `$` not escaped as `\$` (a currency sign inside the formula).
fn closing_dollar(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len()).find(|&i| b[i] == b'$' && (i == 0 || b[i - 1] != b'\\'))
}

/// GSM8K's last `#### 42` (also `**#### 42**`, `` `#### 42` ``), with where it starts.
pub fn gsm8k(s: &str) -> Option<(usize, &str)> {
    let i = s.rfind("####")?;
    let rest = s[i + 4..].trim_start_matches('#');
    let line = rest.lines().next().unwrap_or("");
    let line = line.trim().trim_matches(['*', '`']).trim();
    Some((i, line.strip_suffix('.').unwrap_or(line)))
}

/// A LaTeX math span: the content between its delimiters and where the opener starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span<'a> {
    pub start: usize,
    pub end: usize,
    pub content: &'a str,
}

/// The last math spans of the text (`$$…$$`, `\[…\]`, `$…$`, `\(…\)`), at most `keep` of
/// them, in text order. Inline spans (`$…$`, `\(…\)`) stay on one line, as in LaTeX. One pass:
/// once a closing delimiter is known to be missing, that opener is not searched for again.
pub fn latex_spans(s: &str, keep: usize) -> Vec<Span<'_>> {
    let b = s.as_bytes();
    let mut out: Vec<Span<'_>> = Vec::new();
    let mut no_display_close = false;
    let mut no_bracket_close = false;
    let mut inline_dead_until = 0usize;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' && b[i] != b'\\' {
            i += 1;
            continue;
        }
        let rest = &s[i..];
        let (open, close, multiline) = if rest.starts_with("\\$") {
            i += 2;
            continue;
        } else if rest.starts_with("$$") {
            ("$$", "$$", true)
        } else if rest.starts_with('$') {
            ("$", "$", false)
        } else if rest.starts_with("\\[") {
            ("\\[", "\\]", true)
        } else if rest.starts_with("\\(") {
            ("\\(", "\\)", false)
        } else {
            i += 1;
            continue;
        };
        let body_start = i + open.len();
        let dead = if multiline {
            if open == "$$" {
                no_display_close
            } else {
                no_bracket_close
            }
        } else {
            i < inline_dead_until
        };
        if dead {
            i += open.len();
            continue;
        }
        let found = find_close(&s[body_start..], close, multiline);
        match found {
            Some(len) => {
                let content = &s[body_start..body_start + len];
                if !content.trim().is_empty() {
                    if out.len() == keep {
                        out.remove(0);
                    }
                    out.push(Span {
                        start: i,
                        end: body_start + len + close.len(),
                        content,
                    });
                }
                i = body_start + len + close.len();
            }
            None => {
                if multiline && open == "$$" {
                    no_display_close = true;
                } else if multiline {
                    no_bracket_close = true;
                } else {
                    inline_dead_until = s[i..].find('\n').map_or(s.len(), |n| i + n);
                }
                i += open.len();
            }
        }
    }
    out
}

/// Length of the body before the first unescaped `close`; `None` when a newline comes first
/// for an inline span, or no closer follows.
fn find_close(body: &str, close: &str, multiline: bool) -> Option<usize> {
    let b = body.as_bytes();
    let c = close.as_bytes();
    let mut j = 0;
    while j < b.len() {
        if !multiline && b[j] == b'\n' {
            return None;
        }
        if b[j] == b'\\' && close == "$" && b.get(j + 1) == Some(&b'$') {
            j += 2;
            continue;
        }
        if b[j..].starts_with(c) && (close != "$" || j == 0 || b[j - 1] != b'\\') {
            return Some(j);
        }
        j += 1;
    }
    None
}

/// The last spans joined into one list when only `,`, "and" or "or" separate them
/// (`$1$ and $2$ and $3$`), as Math-Verify reads them.
pub fn join_spans<'a>(s: &'a str, spans: &[Span<'a>]) -> Option<Cow<'a, str>> {
    let last = spans.last()?;
    let mut first = spans.len() - 1;
    while first > 0 {
        let between = s[spans[first - 1].end..spans[first].start].trim();
        let between = between.trim_start_matches(',').trim();
        if between.is_empty()
            || between == ","
            || between.eq_ignore_ascii_case("and")
            || between.eq_ignore_ascii_case("or")
        {
            first -= 1;
        } else {
            break;
        }
    }
    if first == spans.len() - 1 {
        return Some(Cow::Borrowed(last.content));
    }
    let parts: Vec<&str> = spans[first..].iter().map(|sp| sp.content.trim()).collect();
    Some(Cow::Owned(parts.join(", ")))
}

/// The last number in the text, normalised, and where it ends: `1,234.5` and `1 234` lose
/// their thousands separators, a decimal comma (`2,74`, `1000,99`: not a group of exactly three
/// digits) becomes a point, a fraction `2/3` or `\frac{2}{3}` is kept whole, and a `%` right
/// after it is kept. A number glued to letters on its left (`XYZ2`) is a name, not a number.
pub fn last_number(s: &str) -> Option<(usize, Cow<'_, str>)> {
    let b = s.as_bytes();
    let mut limit = b.len();
    loop {
        let end = b[..limit].iter().rposition(u8::is_ascii_digit)? + 1;
        let start = number_start(b, end);
        if start > 0 && b[start - 1].is_ascii_alphabetic() {
            limit = start;
            continue;
        }
        if let Some((f_start, f_end)) = latex_fraction(s, start, end) {
            return Some((f_end, Cow::Borrowed(&s[f_start..f_end])));
        }
        let raw = s[start..end].trim_start_matches([',', ' ']);
        let after = s[end..].trim_start().as_bytes();
        let word = |w: &[u8]| after.len() >= w.len() && after[..w.len()].eq_ignore_ascii_case(w);
        let percent = word(b"%") || word(b"percent") || word(b"pct");
        let number = normalise_number(raw);
        return Some((
            end,
            match (number, percent) {
                (n, false) => n,
                (n, true) => Cow::Owned(format!("{n}\\%")),
            },
        ));
    }
}

/// Where the number ending at `end` starts: digits, `.`, `,`/space between digit groups, an
/// integer numerator before `/`, and a leading `-`.
fn number_start(b: &[u8], end: usize) -> usize {
    let mut start = end;
    while start > 0 {
        let c = b[start - 1];
        let next_is_digit = b.get(start).is_some_and(u8::is_ascii_digit);
        let prev_is_digit = start >= 2 && b[start - 2].is_ascii_digit();
        if c.is_ascii_digit()
            || ((c == b'.' || c == b',') && next_is_digit)
            || (c == b' ' && next_is_digit && prev_is_digit && group_of_three(&b[start..]))
        {
            start -= 1;
        } else {
            break;
        }
    }
    if start >= 2 && b[start - 1] == b'/' && b[start - 2].is_ascii_digit() {
        let mut j = start - 1;
        while j > 0 && b[j - 1].is_ascii_digit() {
            j -= 1;
        }
        start = j;
    }
    if start > 0 && b[start - 1] == b'-' {
        start -= 1;
    }
    start
}

/// `\frac{a}{b}` (or `\dfrac`, `\tfrac`, with a leading `-`) whose denominator is the number
/// at `start..end`: its byte range.
fn latex_fraction(s: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    if !s[end..].starts_with('}') {
        return None;
    }
    let head = s[..start].strip_suffix("}{")?;
    let num_start = head
        .trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-')
        .len();
    let head = head[..num_start].strip_suffix('{')?;
    let cmd = ["\\frac", "\\dfrac", "\\tfrac"]
        .into_iter()
        .find(|c| head.ends_with(c))?;
    let mut f_start = head.len() - cmd.len();
    if s[..f_start].ends_with('-') {
        f_start -= 1;
    }
    Some((f_start, end + 1))
}

fn group_of_three(after: &[u8]) -> bool {
    after.len() >= 3
        && after[..3].iter().all(u8::is_ascii_digit)
        && !after.get(3).is_some_and(u8::is_ascii_digit)
}

/// `1,234,567.5` → `1234567.5`; `2,74` → `2.74`; `1 000` → `1000`.
fn normalise_number(raw: &str) -> Cow<'_, str> {
    if !raw.contains([',', ' ']) {
        return Cow::Borrowed(raw);
    }
    let groups: Vec<&str> = raw.split([',', ' ']).collect();
    let thousands = groups.len() >= 2
        && (1..=3).contains(&groups[0].trim_start_matches('-').len())
        && !groups[0].trim_start_matches('-').starts_with('0')
        && groups[1..groups.len() - 1].iter().all(|g| g.len() == 3)
        && groups[groups.len() - 1]
            .split('.')
            .next()
            .is_some_and(|g| g.len() == 3);
    if thousands {
        return Cow::Owned(groups.concat());
    }
    if groups.len() == 2 && !groups[1].contains('.') && !raw.contains(' ') {
        return Cow::Owned(format!("{}.{}", groups[0], groups[1]));
    }
    // Several numbers run together ("1, 2, 3"): the last one.
    Cow::Borrowed(groups[groups.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_groups_join_neighbours_only() {
        let g = |s| box_group(s).map(|(_, t)| t.into_owned());
        assert_eq!(g("\\boxed{1}\\boxed{2}").as_deref(), Some("1, 2"));
        assert_eq!(
            g("\\boxed{k = 45} \\quad \\text{and} \\quad \\boxed{n = 2}").as_deref(),
            Some("k = 45, n = 2")
        );
        assert_eq!(
            g("so \\boxed{5}. Long reasoning follows here. Then finally \\boxed{6}").as_deref(),
            Some("6")
        );
        assert_eq!(g("\\boxed{3} and again \\boxed{3}").as_deref(), Some("3"));
        assert_eq!(g("nothing"), None);
    }

    #[test]
    fn phrases_and_gsm8k() {
        let p = |s| phrase(s).map(|(_, t)| t);
        assert_eq!(
            p("Final Answer: The volume of $V$ is 120. I hope it is correct."),
            Some("120")
        );
        assert_eq!(
            p("The final answer is $28 \\%$. I hope it is correct."),
            Some("28 \\%")
        );
        assert_eq!(p("the answer is **42**."), Some("42"));
        assert_eq!(
            p("Final Answer: Jane started 3 hours ago. I hope it is correct."),
            Some("Jane started 3 hours ago")
        );
        assert_eq!(
            p("final answer is 12,000,023. I hope it is correct. <|im_start|>"),
            Some("12,000,023")
        );
        let g = |s| gsm8k(s).map(|(_, t)| t);
        assert_eq!(g("so **#### 624**"), Some("624"));
        assert_eq!(g("#### 208**"), Some("208"));
        assert_eq!(g("`#### 105`"), Some("105"));
    }

    #[test]
    fn latex_spans_in_order_and_bounded() {
        let s = "a $1$ b \\(2\\) c \\[3\\] d $$4$$ \\$5 $6\n$";
        let got: Vec<&str> = latex_spans(s, 8).iter().map(|sp| sp.content).collect();
        assert_eq!(got, ["1", "2", "3", "4"]);
        assert_eq!(
            join_spans("$1$ and $2$, $3$", &latex_spans("$1$ and $2$, $3$", 6)).as_deref(),
            Some("1, 2, 3")
        );
        let many = "\\(".repeat(100_000);
        assert!(latex_spans(&many, 6).is_empty());
        assert_eq!(latex_spans("é $x$ 中", 6)[0].content, "x");
    }

    #[test]
    fn last_numbers() {
        let n = |s| last_number(s).map(|(_, t)| t.into_owned());
        assert_eq!(n("so it is -1,250.5 apples").as_deref(), Some("-1250.5"));
        assert_eq!(n("Soucis : 2,74 $ a..").as_deref(), Some("2.74"));
        assert_eq!(n("it is 1 000").as_deref(), Some("1000"));
        assert_eq!(n("P(A) = 2/3 then").as_deref(), Some("2/3"));
        assert_eq!(n("about 28 %").as_deref(), Some("28\\%"));
        assert_eq!(n("the list 1, 2, 3").as_deref(), Some("3"));
        assert_eq!(n("none"), None);
        assert_eq!(n("AZYUK2A"), None);
        assert_eq!(
            n("so -\\frac{10}{9} it is").as_deref(),
            Some("-\\frac{10}{9}")
        );
    }
}
