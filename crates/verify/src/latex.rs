//! Tokenizer for answer strings written in LaTeX or plain text.
//!
//! It turns `\dfrac12`, `1{,}000`, `30^\circ`, `\text{ cm}`, `\left(`, `$…$` and friends into a
//! flat token list, absorbing the typography (spacing commands, `\left`/`\right`, font commands,
//! degree signs, currency) so the parser in `expr.rs` only sees mathematics. It does not build
//! trees and does not decide what is equal to what.
//!
//! Work is bounded: input longer than [`MAX_ANSWER_BYTES`] is refused, and `\text{…}` contents
//! are re-tokenized at most [`MAX_TEXT_NESTING`] levels deep.

/// Longest answer string (bytes) that is tokenized at all; longer answers are not mathematics a
/// grader should try to understand, and refusing them bounds every later stage.
pub const MAX_ANSWER_BYTES: usize = 1000;
/// How deep `\text{\text{…}}` contents are re-tokenized.
pub const MAX_TEXT_NESTING: usize = 4;

/// Relational operators, normalised so `\leq`, `\le` and `<=` are one token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelOp {
    Eq,
    /// `\approx`: what follows is a rounded value of what precedes.
    Approx,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Named functions applied by juxtaposition or parentheses (`\sin x`, `\ln(2)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func {
    Sin,
    Cos,
    Tan,
    Cot,
    Sec,
    Csc,
    Arcsin,
    Arccos,
    Arctan,
    Ln,
    Log,
    Exp,
}

/// One lexical unit of an answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// A numeric literal with thousands separators removed: `1000`, `0.5`, `1.5e3`.
    Num(String),
    /// A variable or symbol name: `x`, `a_1`, `alpha`.
    Ident(String),
    /// A word of running text (units, "dollars"); dropped when the answer has mathematics.
    Word(String),
    Plus,
    Minus,
    Pm,
    Star,
    Slash,
    Caret,
    Underscore,
    Bang,
    Percent,
    Comma,
    Bar,
    LParen,
    RParen,
    LBrack,
    RBrack,
    LBrace,
    RBrace,
    SetOpen,
    SetClose,
    Rel(RelOp),
    /// `\in`: membership, `x \in [0, 1]`.
    In,
    /// `\begin{pmatrix}` (any matrix environment) and its `\end`.
    MatOpen,
    MatClose,
    /// `&` between matrix entries, `\\` between rows.
    Amp,
    RowSep,
    Union,
    Frac,
    Sqrt,
    Binom,
    Pi,
    E,
    Inf,
    Func(Func),
}

/// Why an answer could not be tokenized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LexError {
    TooLong,
    Unsupported(String),
    Unbalanced,
}

/// Tokenizes an answer string.
pub fn tokenize(s: &str) -> Result<Vec<Tok>, LexError> {
    if s.len() > MAX_ANSWER_BYTES {
        return Err(LexError::TooLong);
    }
    let mut lx = Lexer {
        b: s.as_bytes(),
        s,
        i: 0,
        out: Vec::with_capacity(s.len() / 2 + 1),
        space_before: true,
    };
    lx.run(0)?;
    Ok(lx.out)
}

struct Lexer<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    out: Vec<Tok>,
    /// Whether whitespace (or the start) precedes the current position; decides whether a
    /// two-letter run like `cm` is a unit word (`5 cm`) or a product (`2xy`).
    space_before: bool,
}

fn is_function_word(w: &str) -> Option<Tok> {
    Some(match w {
        "sin" => Tok::Func(Func::Sin),
        "cos" => Tok::Func(Func::Cos),
        "tan" => Tok::Func(Func::Tan),
        "cot" => Tok::Func(Func::Cot),
        "sec" => Tok::Func(Func::Sec),
        "csc" => Tok::Func(Func::Csc),
        "arcsin" => Tok::Func(Func::Arcsin),
        "arccos" => Tok::Func(Func::Arccos),
        "arctan" => Tok::Func(Func::Arctan),
        "ln" => Tok::Func(Func::Ln),
        "log" => Tok::Func(Func::Log),
        "exp" => Tok::Func(Func::Exp),
        "sqrt" => Tok::Sqrt,
        "pi" => Tok::Pi,
        "inf" | "infty" | "infinity" => Tok::Inf,
        "or" | "and" => Tok::Comma,
        _ => return None,
    })
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }

    fn push(&mut self, t: Tok) {
        self.out.push(t);
        self.space_before = false;
    }

    fn run(&mut self, depth: usize) -> Result<(), LexError> {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\n' | b'\r' | b'~' | b'$' => {
                    self.i += 1;
                    self.space_before = true;
                }
                b'0'..=b'9' | b'.' => self.number()?,
                b'a'..=b'z' | b'A'..=b'Z' => self.letters(),
                b'\\' => self.command(depth)?,
                b'^' => self.caret(),
                b'{' if self.rest().starts_with("{,}") => {
                    // `{,}` outside a number is a plain comma that LaTeX typesets without space.
                    self.i += 3;
                    self.push(Tok::Comma);
                }
                _ => {
                    let tok = match c {
                        b'+' => Tok::Plus,
                        b'-' => Tok::Minus,
                        b'*' => Tok::Star,
                        b'/' => Tok::Slash,
                        b'_' => Tok::Underscore,
                        b'!' if self.b.get(self.i + 1) == Some(&b'=') => {
                            self.i += 1;
                            Tok::Rel(RelOp::Ne)
                        }
                        b'!' => Tok::Bang,
                        b'%' => Tok::Percent,
                        b',' | b';' => Tok::Comma,
                        b'|' => Tok::Bar,
                        b'(' => Tok::LParen,
                        b')' => Tok::RParen,
                        b'[' => Tok::LBrack,
                        b']' => Tok::RBrack,
                        b'{' => Tok::LBrace,
                        b'}' => Tok::RBrace,
                        b'=' => Tok::Rel(RelOp::Eq),
                        b'<' | b'>' => {
                            let eq = self.b.get(self.i + 1) == Some(&b'=');
                            if eq {
                                self.i += 1;
                            }
                            Tok::Rel(match (c, eq) {
                                (b'<', false) => RelOp::Lt,
                                (b'<', true) => RelOp::Le,
                                (_, false) => RelOp::Gt,
                                (_, true) => RelOp::Ge,
                            })
                        }
                        b':' => match self.colon()? {
                            Some(t) => t,
                            None => {
                                // `x: 3` style labels carry no mathematics.
                                self.i += 1;
                                self.space_before = true;
                                continue;
                            }
                        },
                        b'&' => Tok::Amp,
                        _ => return self.unicode(),
                    };
                    self.i += 1;
                    self.push(tok);
                }
            }
        }
        Ok(())
    }

    fn unicode(&mut self) -> Result<(), LexError> {
        let ch = self.rest().chars().next().ok_or(LexError::Unbalanced)?;
        self.i += ch.len_utf8();
        let tok = match ch {
            '×' | '·' | '⋅' => Tok::Star,
            '÷' => Tok::Slash,
            '−' | '–' => Tok::Minus,
            '±' => Tok::Pm,
            '≤' => Tok::Rel(RelOp::Le),
            '≥' => Tok::Rel(RelOp::Ge),
            '≠' => Tok::Rel(RelOp::Ne),
            'π' => Tok::Pi,
            '∞' => Tok::Inf,
            '∪' => Tok::Union,
            '√' => Tok::Sqrt,
            '°' | '€' | '£' | '¥' | '\u{a0}' => {
                self.space_before = true;
                return Ok(());
            }
            c if c.is_alphabetic() => Tok::Word(c.to_string()),
            c => return Err(LexError::Unsupported(c.to_string())),
        };
        self.push(tok);
        Ok(())
    }

    /// Digits with an optional fraction, thousands groups (`1,000`, `1{,}000`, `1\,000`,
    /// `1 000`) and scientific exponent (`1.5e-3`). A separator only joins when exactly three
    /// digits follow and no fourth, so `(1,2)` and `1, 23` stay lists.
    fn number(&mut self) -> Result<(), LexError> {
        let start = self.i;
        let mut text = String::new();
        self.digits(&mut text);
        let lead_len = text.len();
        let mut grouped = false;
        if (1..=3).contains(&lead_len) && !text.starts_with('0') {
            while let Some(skip) = self.thousands_separator() {
                grouped = true;
                self.i += skip;
                self.digits(&mut text);
            }
        }
        if self.peek() == Some(b'.') && self.b.get(self.i + 1).is_some_and(u8::is_ascii_digit) {
            text.push('.');
            self.i += 1;
            self.digits(&mut text);
        } else if self.peek() == Some(b'.') && !grouped && !text.is_empty() {
            // A trailing `3.` is a full stop or a bare decimal point; either way it is 3.
            self.i += 1;
        }
        if text.is_empty() {
            // A lone `.` (end of a sentence): nothing mathematical.
            self.i = start + 1;
            self.space_before = true;
            return Ok(());
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let mut j = self.i + 1;
            if matches!(self.b.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if self.b.get(j).is_some_and(u8::is_ascii_digit) {
                text.push('e');
                text.push_str(&self.s[self.i + 1..j]);
                self.i = j;
                self.digits(&mut text);
            }
        }
        if let Some(value) = self.base_subscript(&text) {
            text = value;
        }
        self.push(Tok::Num(text));
        Ok(())
    }

    /// `204_5`, `1011_{2}`: a numeral in base 2–36, read as its decimal value. Digits invalid
    /// for the base (or a value beyond `u64`) leave the numeral and its subscript unread, so
    /// the parse stops there.
    fn base_subscript(&mut self, digits: &str) -> Option<String> {
        let rest = self.rest().strip_prefix('_')?;
        let (base, len) = match rest.strip_prefix('{') {
            Some(inner) => {
                let end = inner.find('}')?;
                (&inner[..end], end + 3)
            }
            None => (rest.get(..1)?, 2),
        };
        let base: u32 = base.trim().parse().ok()?;
        if !(2..=36).contains(&base) || digits.contains(['.', 'e']) {
            return None;
        }
        let value = u64::from_str_radix(digits, base).ok()?;
        self.i += len;
        Some(value.to_string())
    }

    fn digits(&mut self, text: &mut String) {
        while let Some(c) = self.peek().filter(u8::is_ascii_digit) {
            text.push(c as char);
            self.i += 1;
        }
    }

    /// Length of a thousands separator at the cursor that is followed by exactly three digits.
    fn thousands_separator(&self) -> Option<usize> {
        let rest = self.rest();
        let sep = [
            ",\\! ", ",\\!", "{,}\\!", "{,}", " {, }", "{, }", ",", "\\,", " ", "\\ ", "\\!",
        ]
        .into_iter()
        .find(|p| rest.starts_with(p))?
        .len();
        let after = &self.b[self.i + sep..];
        let three = after.len() >= 3 && after[..3].iter().all(u8::is_ascii_digit);
        let fourth = after.get(3).is_some_and(u8::is_ascii_digit);
        (three && !fourth).then_some(sep)
    }

    /// `7:32` or `A:B` written without spaces is a ratio; `12:00` is a time of day, which has
    /// no numeric reading and stops the parse (so only identical text matches it).
    fn colon(&self) -> Result<Option<Tok>, LexError> {
        let (Some(&prev), Some(&next)) = (
            self.i.checked_sub(1).and_then(|j| self.b.get(j)),
            self.b.get(self.i + 1),
        ) else {
            return Ok(None);
        };
        let glued = |c: u8| c.is_ascii_alphanumeric() || c == b'}';
        if !glued(prev) || !(next.is_ascii_alphanumeric() || next == b'\\') {
            return Ok(None);
        }
        if self.b[self.i + 1..].starts_with(b"00") {
            // `12:00` is a time of day, not a ratio with a zero term.
            return Err(LexError::Unsupported("time of day".into()));
        }
        Ok(Some(Tok::Slash))
    }

    /// `\begin{pmatrix}` / `\end{pmatrix}` (also bmatrix, vmatrix, matrix, array with its column
    /// spec); other environments are skipped as typography.
    fn environment(&mut self, begin: bool) -> Result<(), LexError> {
        let rest = self.rest();
        let Some(inner) = rest.strip_prefix('{') else {
            return Err(LexError::Unbalanced);
        };
        let close = inner.find('}').ok_or(LexError::Unbalanced)?;
        let env = &inner[..close];
        self.i += close + 2;
        let matrix = matches!(
            env,
            "pmatrix"
                | "bmatrix"
                | "Bmatrix"
                | "vmatrix"
                | "Vmatrix"
                | "matrix"
                | "smallmatrix"
                | "array"
        );
        if !matrix {
            self.space_before = true;
            return Ok(());
        }
        if begin && env == "array" && self.rest().starts_with('{') {
            let spec_end = self.rest().find('}').ok_or(LexError::Unbalanced)?;
            self.i += spec_end + 1;
        }
        self.push(if begin { Tok::MatOpen } else { Tok::MatClose });
        Ok(())
    }

    fn letters(&mut self) {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.i += 1;
        }
        let word = &self.s[start..self.i];
        let lower = word.to_ascii_lowercase();
        if let Some(tok) = is_function_word(&lower) {
            self.push(tok);
        } else if word.len() >= 3
            || (word.len() == 2
                && self.space_before
                && !word.bytes().all(|c| c.is_ascii_uppercase()))
        {
            self.push(Tok::Word(lower));
        } else {
            for c in word.chars() {
                self.push(if c == 'e' {
                    Tok::E
                } else {
                    Tok::Ident(c.to_string())
                });
            }
            self.subscript();
        }
    }

    /// Folds `_1`, `_{n}` into the preceding identifier so `a_1` is one symbol.
    fn subscript(&mut self) {
        if self.peek() != Some(b'_') {
            return;
        }
        let Some(Tok::Ident(name)) = self.out.last() else {
            return;
        };
        let rest = &self.rest()[1..];
        let sub = if let Some(inner) = rest.strip_prefix('{') {
            match inner.find('}') {
                Some(end) if end <= 16 => &inner[..end],
                _ => return,
            }
        } else {
            match rest.chars().next() {
                Some(c) if c.is_ascii_alphanumeric() => &rest[..1],
                _ => return,
            }
        };
        let consumed = 1 + if rest.starts_with('{') {
            sub.len() + 2
        } else {
            1
        };
        let name = format!("{name}_{}", sub.trim());
        self.i += consumed;
        if let Some(last) = self.out.last_mut() {
            *last = Tok::Ident(name);
        }
    }

    /// `^\circ`, `^{\circ}` (degrees) vanish; `^23` in LaTeX is `^2` times 3.
    fn caret(&mut self) {
        let rest = &self.rest()[1..];
        for deg in ["\\circ", "{\\circ}", "{ \\circ }", "\\degree"] {
            if rest.starts_with(deg) {
                self.i += 1 + deg.len();
                self.space_before = true;
                return;
            }
        }
        self.i += 1;
        self.push(Tok::Caret);
        self.single_digit();
    }

    /// LaTeX takes one character as an unbraced argument: `\frac12`, `\sqrt2`, `x^23`.
    fn single_digit(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
        if let Some(c) = self.peek().filter(u8::is_ascii_digit) {
            self.i += 1;
            self.push(Tok::Num((c as char).to_string()));
        }
    }

    fn command(&mut self, depth: usize) -> Result<(), LexError> {
        let start = self.i + 1;
        let mut end = start;
        while self.b.get(end).is_some_and(u8::is_ascii_alphabetic) {
            end += 1;
        }
        if end == start {
            // A control symbol: `\{`, `\%`, `\,`, `\$`, `\!`, `\ `.
            let Some(&c) = self.b.get(start) else {
                self.i = start;
                return Ok(());
            };
            self.i = start + 1;
            match c {
                b'{' => self.push(Tok::SetOpen),
                b'}' => self.push(Tok::SetClose),
                b'%' => self.push(Tok::Percent),
                b'|' => self.push(Tok::Bar),
                b'(' | b')' | b'[' | b']' | b'$' | b',' | b'!' | b';' | b':' | b' ' | b'#'
                | b'&' => self.space_before = true,
                // `\\` before a command name is a doubled escape (`\\frac` from a JSON or Python
                // string written twice); otherwise it is a matrix row break.
                b'\\' if self.b.get(self.i).is_some_and(u8::is_ascii_alphabetic) => {
                    self.i = start;
                    return self.command(depth);
                }
                b'\\' => self.push(Tok::RowSep),
                _ => return Err(LexError::Unsupported(format!("\\{}", c as char))),
            }
            return Ok(());
        }
        let name = &self.s[start..end];
        self.i = end;
        let tok = match name {
            "frac" | "dfrac" | "tfrac" | "cfrac" => {
                self.push(Tok::Frac);
                self.single_digit();
                self.single_digit();
                return Ok(());
            }
            "sqrt" => {
                self.push(Tok::Sqrt);
                self.single_digit();
                return Ok(());
            }
            "binom" | "dbinom" | "tbinom" => Tok::Binom,
            "approx" | "simeq" => Tok::Rel(RelOp::Approx),
            "in" => Tok::In,
            "begin" | "end" => return self.environment(name == "begin"),
            // `\quadx`: a spacing command run into the next symbol (seen in dataset answers).
            _ if name.starts_with("qquad") || name.starts_with("quad") => {
                let skip = if name.starts_with("qquad") { 5 } else { 4 };
                self.i = start + skip;
                self.space_before = true;
                return Ok(());
            }
            "cdot" | "times" | "ast" => Tok::Star,
            "div" => Tok::Slash,
            "pm" | "mp" => Tok::Pm,
            "pi" => Tok::Pi,
            "infty" | "infin" => Tok::Inf,
            "cup" => Tok::Union,
            "le" | "leq" | "leqslant" => Tok::Rel(RelOp::Le),
            "ge" | "geq" | "geqslant" => Tok::Rel(RelOp::Ge),
            "lt" => Tok::Rel(RelOp::Lt),
            "gt" => Tok::Rel(RelOp::Gt),
            "ne" | "neq" => Tok::Rel(RelOp::Ne),
            "lbrace" => Tok::SetOpen,
            "rbrace" => Tok::SetClose,
            "vert" | "lvert" | "rvert" | "mid" => Tok::Bar,
            "langle" => Tok::LParen,
            "rangle" => Tok::RParen,
            "left" | "right" | "big" | "Big" | "bigg" | "Bigg" | "bigl" | "bigr" | "Bigl"
            | "Bigr" | "displaystyle" | "textstyle" | "quad" | "qquad" | "circ" | "degree"
            | "boxed" | "fbox" | "mathbf" | "bm" | "boldsymbol" | "mathit" | "mathsf"
            | "dollar" | "limits" | "nolimits" => {
                self.space_before = true;
                return Ok(());
            }
            "text" | "textbf" | "textit" | "textrm" | "mathrm" | "mbox" | "operatorname"
            | "textnormal" | "emph" => return self.text_group(depth),
            "sin" | "cos" | "tan" | "cot" | "sec" | "csc" | "arcsin" | "arccos" | "arctan"
            | "ln" | "log" | "exp" => match is_function_word(name) {
                Some(t) => t,
                None => return Err(LexError::Unsupported(name.to_string())),
            },
            "alpha" | "beta" | "gamma" | "delta" | "theta" | "lambda" | "mu" | "sigma" | "phi"
            | "omega" | "tau" | "rho" | "epsilon" | "varepsilon" | "varphi" | "eta" | "xi"
            | "zeta" | "kappa" | "nu" | "chi" | "psi" | "Delta" | "Omega" | "Gamma" | "Theta"
            | "Phi" | "Sigma" | "Lambda" => Tok::Ident(name.to_string()),
            _ => return Err(LexError::Unsupported(format!("\\{name}"))),
        };
        self.push(tok);
        self.subscript();
        Ok(())
    }

    /// `\text{…}`: "or"/"and" separate answers, words are units or prose, anything else is
    /// re-tokenized as mathematics (`\text{(B)}`).
    fn text_group(&mut self, depth: usize) -> Result<(), LexError> {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
        if self.peek() != Some(b'{') {
            return Ok(());
        }
        let inner_start = self.i + 1;
        let mut level = 0usize;
        let mut j = self.i;
        while j < self.b.len() {
            match self.b[j] {
                b'{' => level += 1,
                b'}' => {
                    level -= 1;
                    if level == 0 {
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        if j >= self.b.len() {
            return Err(LexError::Unbalanced);
        }
        let inner = &self.s[inner_start..j];
        self.i = j + 1;
        let trimmed = inner.trim();
        let lower = trimmed.to_ascii_lowercase();
        if lower == "or" || lower == "and" || lower == "," {
            self.push(Tok::Comma);
        } else if !trimmed.is_empty()
            && trimmed
                .chars()
                .all(|c| c.is_alphabetic() || c == ' ' || c == '.' || c == '\'')
            && trimmed.chars().filter(|c| c.is_alphabetic()).count() >= 2
        {
            for w in trimmed.split(' ').filter(|w| !w.is_empty()) {
                let w = w.trim_end_matches('.').to_lowercase();
                self.push(if w == "or" || w == "and" {
                    Tok::Comma
                } else {
                    Tok::Word(w)
                });
            }
        } else if depth < MAX_TEXT_NESTING {
            let mut sub = Lexer {
                s: inner,
                b: inner.as_bytes(),
                i: 0,
                out: std::mem::take(&mut self.out),
                space_before: true,
            };
            sub.run(depth + 1)?;
            self.out = sub.out;
        } else {
            return Err(LexError::Unbalanced);
        }
        self.space_before = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Tok {
        Tok::Num(s.into())
    }

    #[test]
    fn thousands_separators_join_only_three_digit_groups() {
        assert_eq!(tokenize("1,000").unwrap(), vec![num("1000")]);
        assert_eq!(tokenize("1{,}000{,}000").unwrap(), vec![num("1000000")]);
        assert_eq!(tokenize("12\\,345").unwrap(), vec![num("12345")]);
        assert_eq!(
            tokenize("1,2").unwrap(),
            vec![num("1"), Tok::Comma, num("2")]
        );
        assert_eq!(
            tokenize("1,0000").unwrap(),
            vec![num("1"), Tok::Comma, num("0000")]
        );
    }

    #[test]
    fn latex_one_character_arguments() {
        assert_eq!(
            tokenize("\\dfrac12").unwrap(),
            vec![Tok::Frac, num("1"), num("2")]
        );
        assert_eq!(
            tokenize("x^23").unwrap(),
            vec![Tok::Ident("x".into()), Tok::Caret, num("2"), num("3")]
        );
    }

    #[test]
    fn typography_vanishes() {
        assert_eq!(tokenize("$30^\\circ$").unwrap(), vec![num("30")]);
        assert_eq!(
            tokenize("\\left( 1 \\right)").unwrap(),
            vec![Tok::LParen, num("1"), Tok::RParen]
        );
        assert_eq!(
            tokenize("5\\text{ cm}").unwrap(),
            vec![num("5"), Tok::Word("cm".into())]
        );
        assert_eq!(
            tokenize("2 \\text{ or } 3").unwrap(),
            vec![num("2"), Tok::Comma, num("3")]
        );
        assert_eq!(
            tokenize("\\text{(B)}").unwrap(),
            vec![Tok::LParen, Tok::Ident("B".into()), Tok::RParen]
        );
    }

    #[test]
    fn subscripts_and_sci_notation() {
        assert_eq!(tokenize("a_{1}").unwrap(), vec![Tok::Ident("a_1".into())]);
        assert_eq!(tokenize("1.5e-3").unwrap(), vec![num("1.5e-3")]);
        assert_eq!(tokenize("2e").unwrap(), vec![num("2"), Tok::E]);
    }

    #[test]
    fn refuses_overlong_input() {
        assert_eq!(tokenize(&"1".repeat(2000)), Err(LexError::TooLong));
    }
}
