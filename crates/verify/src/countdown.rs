//! The Countdown task (TinyZero): an arithmetic expression over the given numbers that
//! evaluates to the target.
//!
//! The answer (from `<answer>…</answer>` or a box, see `extract.rs`) may use integers, `+ - * /`
//! (also `\times`, `\cdot`, `\div`, `×`, `÷`), and parentheses, optionally followed by
//! `= target`. There is no unary minus and no digit concatenation, as in the game. Each literal
//! must be one of the given numbers, used at most once (or exactly once when `use_all`); the
//! value is computed with exact rationals, and division by zero or overflow is simply wrong.
//! This file does not judge the format of the surrounding response.

use crate::extract::{extract, ExtractConfig};
use crate::rational::Ratio;

/// Longest expression (bytes) considered; a real solution over six numbers is far shorter.
pub const MAX_EXPRESSION_BYTES: usize = 256;
const MAX_DEPTH: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tok {
    Num(i128),
    Op(u8),
    Open,
    Close,
}

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        let (tok, len) = match c {
            '0'..='9' => {
                let end = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                (Some(Tok::Num(rest[..end].parse().ok()?)), end)
            }
            '+' | '-' | '*' | '/' => (Some(Tok::Op(c as u8)), 1),
            '×' | '·' => (Some(Tok::Op(b'*')), c.len_utf8()),
            '÷' => (Some(Tok::Op(b'/')), c.len_utf8()),
            '(' | '[' => (Some(Tok::Open), 1),
            ')' | ']' => (Some(Tok::Close), 1),
            ' ' | '\t' | '\n' | '$' => (None, 1),
            '\\' => {
                let cmd = ["\\times", "\\cdot", "\\div", "\\left", "\\right"]
                    .into_iter()
                    .find(|p| rest.starts_with(p))?;
                let tok = match cmd {
                    "\\times" | "\\cdot" => Some(Tok::Op(b'*')),
                    "\\div" => Some(Tok::Op(b'/')),
                    _ => None,
                };
                (tok, cmd.len())
            }
            _ => return None,
        };
        out.extend(tok);
        rest = &rest[len..];
    }
    Some(out)
}

struct Parser<'a> {
    t: &'a [Tok],
    i: usize,
    used: Vec<i128>,
}

impl Parser<'_> {
    fn expr(&mut self, depth: usize) -> Option<Ratio> {
        let mut acc = self.term(depth)?;
        while let Some(&Tok::Op(op @ (b'+' | b'-'))) = self.t.get(self.i) {
            self.i += 1;
            let rhs = self.term(depth)?;
            acc = if op == b'+' {
                acc.checked_add(rhs)?
            } else {
                acc.checked_sub(rhs)?
            };
        }
        Some(acc)
    }

    fn term(&mut self, depth: usize) -> Option<Ratio> {
        let mut acc = self.atom(depth)?;
        while let Some(&Tok::Op(op @ (b'*' | b'/'))) = self.t.get(self.i) {
            self.i += 1;
            let rhs = self.atom(depth)?;
            acc = if op == b'*' {
                acc.checked_mul(rhs)?
            } else {
                acc.checked_div(rhs)?
            };
        }
        Some(acc)
    }

    fn atom(&mut self, depth: usize) -> Option<Ratio> {
        if depth > MAX_DEPTH {
            return None;
        }
        match *self.t.get(self.i)? {
            Tok::Num(n) => {
                self.i += 1;
                self.used.push(n);
                Ratio::from_int(n)
            }
            Tok::Open => {
                self.i += 1;
                let v = self.expr(depth + 1)?;
                (self.t.get(self.i) == Some(&Tok::Close)).then(|| self.i += 1)?;
                Some(v)
            }
            _ => None,
        }
    }
}

/// Evaluates a Countdown expression, returning its value and the literals it used; `None` when
/// it is malformed, divides by zero, or overflows.
pub fn evaluate(expression: &str) -> Option<(Ratio, Vec<i128>)> {
    if expression.len() > MAX_EXPRESSION_BYTES {
        return None;
    }
    let toks = tokenize(expression)?;
    let mut p = Parser {
        t: &toks,
        i: 0,
        used: Vec::new(),
    };
    let v = p.expr(0)?;
    (p.i == toks.len()).then_some((v, p.used))
}

/// True when `used` draws each value from `numbers` at most once (exactly once if `use_all`).
fn uses_numbers(used: &[i128], numbers: &[i64], use_all: bool) -> bool {
    let mut left: Vec<i128> = numbers.iter().map(|&n| i128::from(n)).collect();
    for n in used {
        match left.iter().position(|m| m == n) {
            Some(i) => {
                left.swap_remove(i);
            }
            None => return false,
        }
    }
    !use_all || left.is_empty()
}

/// Whether an answer string (an expression, optionally `= target`) solves the instance.
pub fn solves(answer: &str, numbers: &[i64], target: i64, use_all: bool) -> bool {
    let (lhs, rhs) = match answer.split_once('=') {
        Some((l, r)) => (l, Some(r.trim())),
        None => (answer, None),
    };
    if let Some(r) = rhs {
        if r.parse::<i64>().ok() != Some(target) {
            return false;
        }
    }
    let Some((value, used)) = evaluate(lhs) else {
        return false;
    };
    Ratio::from_int(i128::from(target)) == Some(value) && uses_numbers(&used, numbers, use_all)
}

/// 1.0 when the completion's extracted answer solves the instance, else 0.0.
pub fn countdown_reward(
    completion: &str,
    numbers: &[i64],
    target: i64,
    use_all: bool,
    extract_cfg: &ExtractConfig,
) -> f32 {
    match extract(completion, extract_cfg) {
        Some(a) if solves(&a.text, numbers, target, use_all) => 1.0,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let nums = [3, 7, 25, 50];
        let cases: &[(&str, bool, bool)] = &[
            // (answer, use_all, expected) for target 75 = 50 + 25
            ("50 + 25", false, true),
            ("50 + 25", true, false),
            ("(50 + 25) * (7 - 3) / (7 - 3)", false, false),
            ("(50 + 25) * 7 / 7", false, false),
            ("50 + 25 * (7 - 3) / (7 - 3)", false, false),
            ("25 * 3", false, true),
            ("25 \\times 3", false, true),
            ("25 × 3 = 75", false, true),
            ("25 * 3 = 76", false, false),
            ("(50 + 25) * (7 - 7)", false, false),
            ("50 + 25 + 7 / (3 - 3)", false, false),
            ("50 + 25 + 0 * 7 * 3", false, false),
            ("50 + 25 + (7 - 3) * 0", false, false),
            ("(25 - 7 + 3) / 7 * 25", false, false),
            ("3 * 25 + 7 - 7", false, false),
            ("3 * 25 * (7 / 7)", false, false),
            ("50 + 25 + 3 - 3", false, false),
            ("50 + 3 * 7 + 3 + 1", false, false),
            ("-3 + 78", false, false),
            ("75", false, false),
            ("503 - 428", false, false),
            ("50 + 25 +", false, false),
            ("(50 + 25", false, false),
            ("50 + 25 + x", false, false),
            ("50 + (25 * 7 - 25) / 7 - 21 / 7 * 0", false, false),
            ("(3 + 7) * 50 / 25 * 25 / 50 * 7.5", false, false),
            ("(50 - 25) * 3 + 7 - 7", false, false),
            ("(50 - 25) * 3", false, true),
            ("50 * 3 / (7 - 3) * 2", false, false),
            ("(50 * 3 - 25 * 3) * 7 / 7", false, false),
            ("50 / (7 - 3) * 3 * 2", false, false),
            ("(7 - 3) * 25 - 50 + 25", false, false),
            (
                "((7 + 3) * 25 - 50) / (50 / 25 * 7 - 3) * 25 / 50 * 7",
                false,
                false,
            ),
            ("(50 * (7 - 3) - 25) / 7 * 3", false, false),
        ];
        for &(a, all, want) in cases {
            assert_eq!(solves(a, &nums, 75, all), want, "{a}");
        }
    }

    #[test]
    fn exactly_once_and_division() {
        assert!(solves(
            "(50 - 7 * 3) * 25 / 25 + 46 - 46",
            &[50, 7, 3, 25, 25, 46, 46],
            29,
            true
        ));
        assert!(solves("12 / (1 - 3 / 4)", &[12, 1, 3, 4], 48, true));
        assert!(!solves("12 / (1 - 4 / 4)", &[12, 1, 4, 4], 48, true));
        let cfg = ExtractConfig::default();
        let done = "<think>try</think><answer>(50 - 25) * 3</answer>";
        assert_eq!(
            countdown_reward(done, &[3, 7, 25, 50], 75, false, &cfg),
            1.0
        );
        assert_eq!(countdown_reward(done, &[3, 7, 25, 50], 75, true, &cfg), 0.0);
        let two = "<answer>1</answer><answer>(50 - 25) * 3</answer>";
        assert_eq!(countdown_reward(two, &[3, 7, 25, 50], 75, false, &cfg), 0.0);
        assert!(!solves(&"(".repeat(5000), &[1], 1, false));
    }
}
