//! Parser from tokens (see `latex.rs`) to an answer tree; evaluation lives in `eval.rs`.
//!
//! An answer is a [`Node`]: a scalar [`Expr`], a tuple or interval, a set, a union, a chain of
//! relations, or plain text. Scalars evaluate exactly to a bounded [`Ratio`] when they are
//! rational ([`Expr::exact`]), and otherwise to `f64` at given variable values
//! ([`Expr::approx`]). Deciding equivalence is `math.rs`'s job, not this file's.
//!
//! Recursion is capped at [`MAX_DEPTH`] nested constructs, so a megabyte of braces is refused
//! after 64 of them rather than overflowing the stack.

use crate::latex::{self, Func, RelOp, Tok};
use crate::rational::Ratio;

/// Deepest nesting of parentheses, braces, fractions and powers the parser follows.
pub const MAX_DEPTH: usize = 64;

/// A scalar expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Num(Ratio),
    /// A literal too large for [`Ratio`]; compared approximately.
    Float(f64),
    Pi,
    E,
    Inf,
    Var(Box<str>),
    Neg(Box<Expr>),
    Add(Box<Expr>, Box<Expr>),
    Sub(Box<Expr>, Box<Expr>),
    Mul(Box<Expr>, Box<Expr>),
    Div(Box<Expr>, Box<Expr>),
    Pow(Box<Expr>, Box<Expr>),
    Sqrt(Box<Expr>),
    /// `\sqrt[n]{x}`: (index, radicand).
    Root(Box<Expr>, Box<Expr>),
    Func(Func, Box<Expr>),
    /// `\log_b x`: (base, argument).
    LogBase(Box<Expr>, Box<Expr>),
    Abs(Box<Expr>),
    Fact(Box<Expr>),
    Binom(Box<Expr>, Box<Expr>),
    /// `x\%`, kept distinct so `50\%` can match both `50` and `0.5` (see `math.rs`).
    Percent(Box<Expr>),
}

/// Bracket shapes of tuples and intervals: `(` `)` `[` `]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bracket {
    Round,
    Square,
}

/// A parsed answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Expr(Expr),
    /// Ordered: a point, a vector, or an interval when the brackets say so.
    Tuple {
        open: Bracket,
        close: Bracket,
        items: Vec<Node>,
    },
    /// Unordered: `\{1, 2\}` or a bare list `1, 2` (several solutions).
    Set(Vec<Node>),
    /// `A \cup B`, unordered.
    Union(Vec<Node>),
    /// `a = b`, `x \le 3`, `y = 2x + 1 = 7`: `ops.len() + 1 == sides.len()`.
    Rel {
        sides: Vec<Node>,
        ops: Vec<RelOp>,
    },
    /// Prose with no mathematics, lower-cased words joined by single spaces.
    Text(String),
    /// A matrix or column vector (`pmatrix`, `bmatrix`, `array`, …), row by row.
    Matrix(Vec<Vec<Node>>),
}

/// Why an answer could not be parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum ParseError {
    Lex(latex::LexError),
    TooDeep,
    Unexpected(usize),
    NotScalar,
}

/// Parses an answer string into a [`Node`].
pub fn parse_answer(s: &str) -> Result<Node, ParseError> {
    let toks = latex::tokenize(s).map_err(ParseError::Lex)?;
    let has_math = toks.iter().any(|t| !matches!(t, Tok::Word(_) | Tok::Comma));
    if !has_math {
        let words: Vec<&str> = toks
            .iter()
            .filter_map(|t| match t {
                Tok::Word(w) => Some(w.as_str()),
                _ => None,
            })
            .collect();
        return Ok(Node::Text(words.join(" ")));
    }
    // Words next to mathematics are units or prose ("5 apples", "x = 3 cm"); "or"/"and" were
    // already turned into commas by the lexer.
    let toks = drop_units(toks);
    let mut p = Parser {
        t: &toks,
        i: 0,
        depth: 0,
        abs_depth: 0,
    };
    let node = p.list(None)?;
    if p.i != toks.len() {
        return Err(ParseError::Unexpected(p.i));
    }
    Ok(node)
}

/// Removes words and a unit power after them (`\text{cm}^2`, `m^{3}`).
fn drop_units(toks: Vec<Tok>) -> Vec<Tok> {
    let mut out = Vec::with_capacity(toks.len());
    let mut it = toks.into_iter().peekable();
    while let Some(t) = it.next() {
        if !matches!(t, Tok::Word(_)) {
            out.push(t);
            continue;
        }
        if it.next_if_eq(&Tok::Caret).is_some() {
            if it.next_if_eq(&Tok::LBrace).is_some() {
                it.next_if(|t| matches!(t, Tok::Num(_)));
                it.next_if_eq(&Tok::RBrace);
            } else {
                it.next_if(|t| matches!(t, Tok::Num(_)));
            }
        }
    }
    out
}

struct Parser<'a> {
    t: &'a [Tok],
    i: usize,
    depth: usize,
    abs_depth: usize,
}

fn boxed(e: Expr) -> Box<Expr> {
    Box::new(e)
}

impl Node {
    fn into_expr(self) -> Result<Expr, ParseError> {
        match self {
            Node::Expr(e) => Ok(e),
            _ => Err(ParseError::NotScalar),
        }
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(ParseError::TooDeep)
        } else {
            Ok(())
        }
    }

    /// Comma-separated items up to `close` (or the end): one item is itself, several a set.
    fn list(&mut self, close: Option<&[Tok]>) -> Result<Node, ParseError> {
        let items = self.items(close)?;
        match items.len() {
            0 => Err(ParseError::Unexpected(self.i)),
            1 => Ok(items.into_iter().next().ok_or(ParseError::NotScalar)?),
            _ => Ok(Node::Set(items)),
        }
    }

    fn items(&mut self, close: Option<&[Tok]>) -> Result<Vec<Node>, ParseError> {
        let at_close = |p: &Self| match (p.peek(), close) {
            (None, _) => true,
            (Some(t), Some(c)) => c.contains(t),
            _ => false,
        };
        let mut items = Vec::new();
        loop {
            while self.eat(&Tok::Comma) {}
            if at_close(self) {
                return Ok(items);
            }
            items.push(self.union()?);
            if !at_close(self) && !self.eat(&Tok::Comma) {
                return Err(ParseError::Unexpected(self.i));
            }
        }
    }

    fn union(&mut self) -> Result<Node, ParseError> {
        let first = self.rel()?;
        // `x \in S` states the answer S.
        if self.eat(&Tok::In) {
            return self.union();
        }
        if self.peek() != Some(&Tok::Union) {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat(&Tok::Union) {
            parts.push(self.rel()?);
        }
        Ok(Node::Union(parts))
    }

    fn rel(&mut self) -> Result<Node, ParseError> {
        let first = self.sum()?;
        let mut sides = vec![first];
        let mut ops = Vec::new();
        while let Some(&Tok::Rel(op)) = self.peek() {
            self.i += 1;
            ops.push(op);
            sides.push(self.sum()?);
        }
        // `x = 1/3 \approx 0.33`: a rounded value after the exact one is commentary; a lone
        // `x \approx 11` states the value.
        if let Some(k) = ops.iter().position(|&op| op == RelOp::Approx) {
            if k == 0 {
                ops[0] = RelOp::Eq;
                ops.truncate(1);
                sides.truncate(2);
            } else {
                ops.truncate(k);
                sides.truncate(k + 1);
            }
        }
        if ops.is_empty() {
            return sides.pop().ok_or(ParseError::NotScalar);
        }
        Ok(Node::Rel { sides, ops })
    }

    /// Sums; `a \pm b` becomes the set `{a + b, a - b}`.
    fn sum(&mut self) -> Result<Node, ParseError> {
        let mut accs = if self.eat(&Tok::Pm) {
            // A leading `\pm 3` is the pair {3, -3}.
            let t = self.term()?.into_expr()?;
            vec![t.clone(), Expr::Neg(boxed(t))]
        } else {
            let first = self.term()?;
            if !matches!(self.peek(), Some(Tok::Plus | Tok::Minus | Tok::Pm)) {
                return Ok(first);
            }
            vec![first.into_expr()?]
        };
        while let Some(op @ (Tok::Plus | Tok::Minus | Tok::Pm)) = self.peek().cloned() {
            self.i += 1;
            let rhs = self.term()?.into_expr()?;
            accs = match op {
                Tok::Plus => accs
                    .into_iter()
                    .map(|a| Expr::Add(boxed(a), boxed(rhs.clone())))
                    .collect(),
                Tok::Minus => accs
                    .into_iter()
                    .map(|a| Expr::Sub(boxed(a), boxed(rhs.clone())))
                    .collect(),
                _ if accs.len() == 1 => {
                    let a = accs.pop().ok_or(ParseError::NotScalar)?;
                    vec![
                        Expr::Add(boxed(a.clone()), boxed(rhs.clone())),
                        Expr::Sub(boxed(a), boxed(rhs)),
                    ]
                }
                _ => return Err(ParseError::Unexpected(self.i)),
            };
        }
        Ok(if accs.len() == 1 {
            Node::Expr(accs.pop().ok_or(ParseError::NotScalar)?)
        } else {
            Node::Set(accs.into_iter().map(Node::Expr).collect())
        })
    }

    fn starts_factor(&self) -> bool {
        match self.peek() {
            Some(Tok::Bar) => self.abs_depth == 0,
            Some(
                Tok::Num(_)
                | Tok::Ident(_)
                | Tok::E
                | Tok::Pi
                | Tok::Inf
                | Tok::LParen
                | Tok::LBrace
                | Tok::Frac
                | Tok::Sqrt
                | Tok::Binom
                | Tok::Func(_),
            ) => true,
            _ => false,
        }
    }

    fn term(&mut self) -> Result<Node, ParseError> {
        let first = self.unary()?;
        if !matches!(self.peek(), Some(Tok::Star | Tok::Slash)) && !self.starts_factor() {
            return Ok(first);
        }
        let mut acc = first.into_expr()?;
        loop {
            if self.eat(&Tok::Star) {
                acc = Expr::Mul(boxed(acc), boxed(self.unary()?.into_expr()?));
            } else if self.eat(&Tok::Slash) {
                acc = Expr::Div(boxed(acc), boxed(self.unary()?.into_expr()?));
            } else if self.starts_factor() {
                let rhs = self.power()?.into_expr()?;
                acc = Expr::Mul(boxed(acc), boxed(rhs));
            } else {
                return Ok(Node::Expr(acc));
            }
        }
    }

    fn unary(&mut self) -> Result<Node, ParseError> {
        self.enter()?;
        let out = if self.eat(&Tok::Minus) {
            match self.unary()?.into_expr()? {
                Expr::Num(r) => Ok(Node::Expr(Expr::Num(r.neg()))),
                e => Ok(Node::Expr(Expr::Neg(boxed(e)))),
            }
        } else if self.eat(&Tok::Plus) {
            self.unary()
        } else {
            self.power()
        };
        self.depth -= 1;
        out
    }

    fn power(&mut self) -> Result<Node, ParseError> {
        let base = self.postfix()?;
        if !self.eat(&Tok::Caret) {
            return Ok(base);
        }
        let exp = self.unary()?.into_expr()?;
        let mut e = Expr::Pow(boxed(base.into_expr()?), boxed(exp));
        while self.eat(&Tok::Bang) {
            e = Expr::Fact(boxed(e));
        }
        Ok(Node::Expr(e))
    }

    fn postfix(&mut self) -> Result<Node, ParseError> {
        let mut n = self.primary()?;
        loop {
            if self.eat(&Tok::Bang) {
                n = Node::Expr(Expr::Fact(boxed(n.into_expr()?)));
            } else if self.eat(&Tok::Percent) {
                n = Node::Expr(Expr::Percent(boxed(n.into_expr()?)));
            } else {
                return Ok(n);
            }
        }
    }

    /// A LaTeX argument: `{…}` or one primary (`\frac12`, `\sqrt x`).
    fn arg(&mut self) -> Result<Expr, ParseError> {
        self.primary()?.into_expr()
    }

    fn primary(&mut self) -> Result<Node, ParseError> {
        self.enter()?;
        let out = self.primary_inner();
        self.depth -= 1;
        out
    }

    fn primary_inner(&mut self) -> Result<Node, ParseError> {
        let tok = self.peek().cloned().ok_or(ParseError::Unexpected(self.i))?;
        self.i += 1;
        let e = match tok {
            Tok::Num(s) => return self.number(&s),
            Tok::Ident(name) => Expr::Var(name.into_boxed_str()),
            Tok::E => Expr::E,
            Tok::Pi => Expr::Pi,
            Tok::Inf => Expr::Inf,
            Tok::LParen | Tok::LBrack => return self.bracketed(&tok),
            Tok::LBrace => {
                let n = self.list(Some(&[Tok::RBrace]))?;
                if !self.eat(&Tok::RBrace) {
                    return Err(ParseError::Unexpected(self.i));
                }
                return Ok(n);
            }
            Tok::MatOpen => return self.matrix(),
            Tok::SetOpen => {
                let items = self.items(Some(&[Tok::SetClose]))?;
                if !self.eat(&Tok::SetClose) {
                    return Err(ParseError::Unexpected(self.i));
                }
                return Ok(Node::Set(items));
            }
            Tok::Frac => {
                let n = self.arg()?;
                Expr::Div(boxed(n), boxed(self.arg()?))
            }
            Tok::Binom => {
                let n = self.arg()?;
                Expr::Binom(boxed(n), boxed(self.arg()?))
            }
            Tok::Sqrt => {
                if self.eat(&Tok::LBrack) {
                    let idx = self.sum()?.into_expr()?;
                    if !self.eat(&Tok::RBrack) {
                        return Err(ParseError::Unexpected(self.i));
                    }
                    Expr::Root(boxed(idx), boxed(self.arg()?))
                } else {
                    Expr::Sqrt(boxed(self.arg()?))
                }
            }
            Tok::Func(f) => self.function(f)?,
            Tok::Bar => {
                self.abs_depth += 1;
                let inner = self.sum();
                self.abs_depth -= 1;
                let inner = inner?.into_expr()?;
                if !self.eat(&Tok::Bar) {
                    return Err(ParseError::Unexpected(self.i));
                }
                Expr::Abs(boxed(inner))
            }
            _ => return Err(ParseError::Unexpected(self.i - 1)),
        };
        Ok(Node::Expr(e))
    }

    /// An integer literal directly followed by `\frac{p}{q}` is a mixed number (`3\frac12` is
    /// 3.5), which is what every textbook answer key means by it.
    fn number(&mut self, s: &str) -> Result<Node, ParseError> {
        let e = match Ratio::parse_decimal(s) {
            Some(r) => Expr::Num(r),
            None => Expr::Float(s.parse::<f64>().map_err(|_| ParseError::NotScalar)?),
        };
        if let (Expr::Num(whole), Some(Tok::Frac)) = (&e, self.peek()) {
            if whole.is_integer() {
                let save = self.i;
                if let Ok(Node::Expr(Expr::Div(p, q))) = self.primary() {
                    if let (Expr::Num(p), Expr::Num(q)) = (p.as_ref(), q.as_ref()) {
                        if p.is_integer() && q.is_integer() && p.numer() > 0 && q.numer() > 0 {
                            let frac = p.checked_div(*q).ok_or(ParseError::NotScalar)?;
                            let total = whole.checked_add(frac).ok_or(ParseError::NotScalar)?;
                            return Ok(Node::Expr(Expr::Num(total)));
                        }
                    }
                }
                self.i = save;
            }
        }
        Ok(Node::Expr(e))
    }

    /// `( … )` or `[ … ]`: grouping when it holds one item with matching brackets; a tuple or
    /// interval when it holds several.
    fn bracketed(&mut self, open: &Tok) -> Result<Node, ParseError> {
        let saved_abs = self.abs_depth;
        self.abs_depth = 0;
        let items = self.items(Some(&[Tok::RParen, Tok::RBrack]));
        self.abs_depth = saved_abs;
        let mut items = items?;
        let close = match self.peek() {
            Some(Tok::RParen) => Bracket::Round,
            Some(Tok::RBrack) => Bracket::Square,
            _ => return Err(ParseError::Unexpected(self.i)),
        };
        self.i += 1;
        let open = if *open == Tok::LParen {
            Bracket::Round
        } else {
            Bracket::Square
        };
        match items.len() {
            0 => Err(ParseError::Unexpected(self.i)),
            1 if open == close => items.pop().ok_or(ParseError::NotScalar),
            1 => Err(ParseError::Unexpected(self.i)),
            _ => Ok(Node::Tuple { open, close, items }),
        }
    }

    /// Entries separated by `&`, rows by `\\`, up to `\end{…}`; a trailing row break is
    /// allowed and every row must have the same length.
    fn matrix(&mut self) -> Result<Node, ParseError> {
        let mut rows: Vec<Vec<Node>> = vec![Vec::new()];
        loop {
            match self.peek() {
                Some(Tok::MatClose) => {
                    self.i += 1;
                    break;
                }
                Some(Tok::RowSep) => {
                    self.i += 1;
                    rows.push(Vec::new());
                }
                Some(Tok::Amp) => self.i += 1,
                Some(_) => {
                    let cell = self.union()?;
                    rows.last_mut().ok_or(ParseError::NotScalar)?.push(cell);
                }
                None => return Err(ParseError::Unexpected(self.i)),
            }
        }
        if rows.last().is_some_and(Vec::is_empty) {
            rows.pop();
        }
        let width = rows.first().map_or(0, Vec::len);
        if width == 0 || rows.iter().any(|r| r.len() != width) {
            return Err(ParseError::Unexpected(self.i));
        }
        Ok(Node::Matrix(rows))
    }

    fn function(&mut self, f: Func) -> Result<Expr, ParseError> {
        let base = if f == Func::Log && self.eat(&Tok::Underscore) {
            Some(self.arg()?)
        } else {
            None
        };
        // `\sin^2 x` squares the value, not the argument.
        let power = if self.eat(&Tok::Caret) {
            Some(self.arg()?)
        } else {
            None
        };
        // `\sin 2x` is sin(2x), but `\sin x \cos x` is a product of two functions and
        // `\sin(x) y` multiplies by y: only bare numbers and symbols join the argument.
        let parenthesised = matches!(self.peek(), Some(Tok::LParen | Tok::LBrace));
        let mut arg = self.power()?.into_expr()?;
        while !parenthesised
            && matches!(
                self.peek(),
                Some(Tok::Num(_) | Tok::Ident(_) | Tok::E | Tok::Pi)
            )
        {
            arg = Expr::Mul(boxed(arg), boxed(self.power()?.into_expr()?));
        }
        let mut e = match base {
            Some(b) => Expr::LogBase(boxed(b), boxed(arg)),
            None => Expr::Func(f, boxed(arg)),
        };
        if let Some(p) = power {
            e = Expr::Pow(boxed(e), boxed(p));
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(s: &str) -> Option<Ratio> {
        match parse_answer(s) {
            Ok(Node::Expr(e)) => e.exact(),
            other => panic!("{s}: {other:?}"),
        }
    }

    fn r(n: i128, d: i128) -> Option<Ratio> {
        Ratio::new(n, d)
    }

    #[test]
    fn exact_values() {
        let cases = [
            ("\\frac{1}{2}", r(1, 2)),
            ("\\dfrac12", r(1, 2)),
            ("1/2", r(1, 2)),
            ("-\\frac{3}{4}", r(-3, 4)),
            ("\\frac{-3}{4}", r(-3, 4)),
            ("2^{10}", r(1024, 1)),
            ("2^-1", r(1, 2)),
            ("3\\frac{1}{2}", r(7, 2)),
            ("1.5 \\times 10^{3}", r(1500, 1)),
            ("\\sqrt{16}", r(4, 1)),
            ("\\sqrt{2}", None),
            ("5!", r(120, 1)),
            ("\\binom{5}{2}", r(10, 1)),
            ("50\\%", r(1, 2)),
            ("2(3+4)", r(14, 1)),
            ("-2^2", r(-4, 1)),
            ("|-3|", r(3, 1)),
            ("10^{10^{10}}", None),
        ];
        for (s, want) in cases {
            assert_eq!(exact(s), want, "{s}");
        }
    }

    #[test]
    fn structures() {
        assert!(matches!(
            parse_answer("[1, 2)"),
            Ok(Node::Tuple {
                open: Bracket::Square,
                close: Bracket::Round,
                ..
            })
        ));
        assert!(matches!(parse_answer("\\{1,2\\}"), Ok(Node::Set(v)) if v.len() == 2));
        assert!(matches!(parse_answer("1, 2, 3"), Ok(Node::Set(v)) if v.len() == 3));
        assert!(matches!(parse_answer("x = 3"), Ok(Node::Rel { .. })));
        assert!(matches!(parse_answer("(0,1) \\cup (2,3)"), Ok(Node::Union(v)) if v.len() == 2));
        assert!(matches!(parse_answer("1 \\pm \\sqrt{2}"), Ok(Node::Set(v)) if v.len() == 2));
        assert_eq!(
            parse_answer("\\text{Monday}"),
            Ok(Node::Text("monday".into()))
        );
    }

    #[test]
    fn depth_is_capped() {
        let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
        assert_eq!(parse_answer(&deep), Err(ParseError::TooDeep));
        let tower = "2^".repeat(300) + "2";
        assert_eq!(parse_answer(&tower), Err(ParseError::TooDeep));
    }
}
