//! Mathematical equivalence of a predicted answer and a reference answer, without a CAS.
//!
//! The rules, applied to the parsed answers (see `expr.rs`):
//!
//! 1. **Same text**: identical after dropping whitespace, `$`, `\left`/`\right` and spacing
//!    commands → equal (also how matrices and other unparsed answers can still match).
//! 2. **Numbers** that are rational (integers, decimals, fractions, `1.5e3`, `2^{10}`,
//!    `\sqrt{16}`, `5!`) are compared *exactly* as bounded rationals: `0.5 = \frac12 = 1/2`,
//!    but `0.333 ≠ \frac13`.
//!    **2b. Decimals against exact values**: a decimal with k places matches an exact value that
//!    is not itself a terminating decimal when it is that value correctly rounded to k places
//!    and within a relative `rel_tol` (default 1e-6, [`DEFAULT_REL_TOL`]): `0.0833333 = \frac1{12}`,
//!    `1.4142136 = \sqrt2`, but `0.083333 ≠ \frac1{12}` and `16386.21 ≠ 16386.2`.
//! 3. **Other scalars** (`\sqrt2`, `\pi`, `e`, variables) are evaluated in `f64` at
//!    [`POINTS`] fixed pseudo-random points for the union of their variables, and must agree to
//!    a relative 1e-9 at every point where both are finite. This decides `2\sqrt{2} = \sqrt8`,
//!    `\frac{x^2-1}{x-1} = x+1` and `(x+1)^2 = x^2+2x+1` cheaply; the chance that two different
//!    closed forms agree to 9 digits at all points is negligible for answers of this size. If
//!    no point is finite on both sides (`10^{10^{10}}`), the parse trees must be identical.
//! 4. **Percent**: `p\%` equals `p` and `p/100`, so "50%", "50" and "0.5" all match a reference
//!    of 50 or of `50\%`. Degrees and units in `\text{}` were already dropped by the lexer.
//! 5. **Equations**: a reference `r` matches `x = r`, `f(x) = r`, `(p, q) = r`, and chains
//!    `x = 2 + 3 = 5` when the last side equals `r` and every other side is a name or a closed
//!    expression also equal to `r` (so `5 = 3` never matches 3, and `x = 7 = 11` asserts
//!    something false and matches nothing). Two equations match when `lhs − rhs` agree up to a
//!    constant factor (`2x + 4y = 3` is `y = -x/2 + 3/4`); inequalities up to a positive one
//!    (`-x > -1` is `x < 1`); `x ≈ 11` states 11 and `x = \frac13 ≈ 0.33` is `x = \frac13`.
//!    An inequality about one name is the interval it describes: `x \ge 5` = `[5, \infty)`,
//!    `-2 < x \le 7` = `(-2, 7]`, and `x \in S` states `S`.
//! 6. **Tuples and intervals** are ordered and their brackets must match: `(1,2) ≠ (2,1)`,
//!    `[1,2) ≠ (1,2)`. **Sets** (`\{…\}`, or a bare list `1, 2`) and **unions** are unordered:
//!    every element of each side must match one on the other. A one-element set matches its
//!    element, but a bare list never matches a single value: `2, 3` does not answer 2, so
//!    hedging with "2 or 3" earns nothing.
//! 7. **Text** answers (no mathematics) match when their words are equal, case-insensitively.
//! 8. **Matrices** (`pmatrix`, `bmatrix`, `array`, …) match entry by entry, whatever the
//!    brackets.
//!
//! Anything that fails to parse only matches by rule 1.

use crate::expr::{parse_answer, Bracket, Expr, Node};
use crate::latex::RelOp;
use crate::rational::Ratio;

/// Variable assignments tried by rule 3. Values avoid 0, 1 and small integers, where distinct
/// polynomials most often coincide, and stay positive so `\sqrt{x}` and `\ln x` are defined.
pub const POINTS: [f64; 3] = [0.577_215_664_9, 1.324_717_957_2, 2.029_883_212_8];
const REL_TOL: f64 = 1e-9;
/// Default relative tolerance between a decimal and an exact value (rule 2b).
pub const DEFAULT_REL_TOL: f64 = 1e-6;

/// True when `pred` is an acceptable answer for the reference answer `gold` (both answer
/// strings, not full responses; see `extract.rs`), with the default decimal tolerance.
pub fn equivalent(gold: &str, pred: &str) -> bool {
    equivalent_with(gold, pred, DEFAULT_REL_TOL)
}

/// [`equivalent`] with the relative tolerance `rel_tol` that a decimal may differ by from an
/// exact value (rule 2b; 0 makes decimals exact).
pub fn equivalent_with(gold: &str, pred: &str, rel_tol: f64) -> bool {
    if squash_eq(gold, pred) {
        return true;
    }
    let rules = Rules { rel_tol };
    match (parse_answer(gold), parse_answer(pred)) {
        (Ok(g), Ok(p)) => rules.nodes_equal(&g, &p),
        _ => false,
    }
}

/// Rule 1: compares with typography removed, without allocating.
fn squash_eq(a: &str, b: &str) -> bool {
    fn squash(s: &str) -> impl Iterator<Item = char> + '_ {
        let mut rest = s;
        std::iter::from_fn(move || loop {
            // A LaTeX line break `\\` is one unit, or `\\ 2` would lose its second backslash
            // to the `\ ` spacing command.
            if let Some(r) = rest.strip_prefix("\\\\") {
                rest = r;
                return Some('\n');
            }
            for noise in [
                "\\left",
                "\\right",
                "\\!",
                "\\,",
                "\\;",
                "\\:",
                "\\ ",
                "\\displaystyle",
            ] {
                if let Some(r) = rest.strip_prefix(noise) {
                    rest = r;
                }
            }
            let c = rest.chars().next()?;
            rest = &rest[c.len_utf8()..];
            if !c.is_whitespace() && c != '$' {
                return Some(c);
            }
        })
    }
    squash(a).eq(squash(b))
}

/// Largest set compared element by element; the comparison is quadratic, and no answer key
/// lists more solutions than this.
pub const MAX_SET_LEN: usize = 64;

struct Rules {
    rel_tol: f64,
}

impl Rules {
    fn nodes_equal(&self, gold: &Node, pred: &Node) -> bool {
        use Node::*;
        match (gold, pred) {
            (Expr(g), Expr(p)) => self.scalar_equal(g, p),
            (Text(g), Text(p)) => g == p,
            (Rel { .. }, Rel { .. }) => self.relations_equal(gold, pred),
            (Rel { sides, ops }, other) | (other, Rel { sides, ops }) => {
                match (as_interval(sides, ops), other) {
                    (Some(iv), Tuple { .. } | Union(_)) => self.nodes_equal(&iv, other),
                    _ => self.chain_equals(sides, ops, other),
                }
            }
            (
                Tuple {
                    open: go,
                    close: gc,
                    items: gi,
                },
                Tuple {
                    open: po,
                    close: pc,
                    items: pi,
                },
            ) => {
                go == po
                    && gc == pc
                    && gi.len() == pi.len()
                    && gi.iter().zip(pi).all(|(g, p)| self.nodes_equal(g, p))
            }
            (Matrix(g), Matrix(p)) => {
                g.len() == p.len()
                    && g.iter().zip(p).all(|(gr, pr)| {
                        gr.len() == pr.len()
                            && gr.iter().zip(pr).all(|(a, b)| self.nodes_equal(a, b))
                    })
            }
            (Set(g), Set(p)) | (Union(g), Union(p)) => self.same_elements(g, p),
            (Set(g), other) if g.len() == 1 => self.nodes_equal(&g[0], other),
            (other, Set(p)) if p.len() == 1 => self.nodes_equal(other, &p[0]),
            _ => false,
        }
    }

    fn same_elements(&self, a: &[Node], b: &[Node]) -> bool {
        if a.len() > MAX_SET_LEN || b.len() > MAX_SET_LEN {
            return false;
        }
        a.iter().all(|x| b.iter().any(|y| self.nodes_equal(x, y)))
            && b.iter().all(|y| a.iter().any(|x| self.nodes_equal(x, y)))
    }

    /// Rule 5, an equation against a value: `x = 3`, `(p, q) = (3, 2)`, `f(x) = 1`.
    fn chain_equals(&self, sides: &[Node], ops: &[RelOp], value: &Node) -> bool {
        if ops.iter().any(|&op| op != RelOp::Eq) {
            return false;
        }
        let Some((last, rest)) = sides.split_last() else {
            return false;
        };
        self.nodes_equal(value, last)
            && rest.iter().all(|side| {
                is_name(side)
                    || matches!(side, Node::Expr(e) if {
                        let mut vars = Vec::new();
                        e.vars(&mut vars);
                        vars.is_empty() && self.nodes_equal(value, side)
                    })
            })
    }

    /// Rule 5, two relations: assignments compare their name and final value; equations
    /// agree up to a constant factor, inequalities up to a positive one; interval-like
    /// inequalities compare as intervals.
    fn relations_equal(&self, gold: &Node, pred: &Node) -> bool {
        let (Node::Rel { sides: gs, ops: go }, Node::Rel { sides: ps, ops: po }) = (gold, pred)
        else {
            return false;
        };
        if let (Some(g), Some(p)) = (as_interval(gs, go), as_interval(ps, po)) {
            return self.nodes_equal(&g, &p);
        }
        let (Some((gl, gop, gr)), Some((pl, pop, pr))) =
            (self.oriented(gs, go), self.oriented(ps, po))
        else {
            return false;
        };
        if gop != pop {
            return false;
        }
        match (gl, gr, pl, pr) {
            (Node::Expr(gl), Node::Expr(gr), Node::Expr(pl), Node::Expr(pr)) => {
                let gd = Expr::Sub(Box::new(gl.clone()), Box::new(gr.clone()));
                let pd = Expr::Sub(Box::new(pl.clone()), Box::new(pr.clone()));
                let any_sign = matches!(gop, RelOp::Eq | RelOp::Ne | RelOp::Approx);
                self.scalar_equal(&gd, &pd) || proportional(&gd, &pd, any_sign)
            }
            _ => gop == RelOp::Eq && self.nodes_equal(gl, pl) && self.nodes_equal(gr, pr),
        }
    }

    /// A two-sided relation with `>`/`≥` flipped to `<`/`≤`. An assignment chain reads as its
    /// name and final value when every step is true (`x = 5 + 6 = 11`); `x = 5 + 5 = 11`
    /// asserts something false and has no reading.
    fn oriented<'a>(
        &self,
        sides: &'a [Node],
        ops: &[RelOp],
    ) -> Option<(&'a Node, RelOp, &'a Node)> {
        let (l, op, r) = match (sides, ops) {
            ([l, r], [op]) => (l, *op, r),
            ([first, middle @ .., last], _)
                if ops.iter().all(|&o| o == RelOp::Eq)
                    && is_name(first)
                    && middle.iter().all(|m| {
                        is_name(m) || (closed(m).is_some() && self.nodes_equal(last, m))
                    }) =>
            {
                (first, RelOp::Eq, last)
            }
            _ => return None,
        };
        Some(match op {
            RelOp::Gt => (r, RelOp::Lt, l),
            RelOp::Ge => (r, RelOp::Le, l),
            _ => (l, op, r),
        })
    }

    /// Rules 2–4.
    fn scalar_equal(&self, g: &Expr, p: &Expr) -> bool {
        match (g, p) {
            (Expr::Percent(a), Expr::Percent(b)) => return self.scalar_equal(a, b),
            (Expr::Percent(a), other) | (other, Expr::Percent(a)) => {
                return self.value_equal(a, other)
                    || self.value_equal(&Expr::Percent(a.clone()), other);
            }
            _ => {}
        }
        self.value_equal(g, p)
    }

    fn value_equal(&self, g: &Expr, p: &Expr) -> bool {
        let (ge, pe) = (g.exact(), p.exact());
        if let (Some(a), Some(b)) = (ge, pe) {
            return a == b || self.decimal_close(a, b) || self.decimal_close(b, a);
        }
        let mut vars = Vec::new();
        g.vars(&mut vars);
        p.vars(&mut vars);
        if vars.is_empty() {
            // A decimal against an irrational closed form (`1.4142136` for `\sqrt2`).
            let (a, b) = (g.approx(&[]), p.approx(&[]));
            let close = |d: Option<Ratio>, v: f64| {
                d.and_then(decimal_places)
                    .is_some_and(|k| self.decimal_close_f64(d.map_or(0.0, Ratio::to_f64), k, v))
            };
            if a.is_finite() && b.is_finite() && (close(ge, b) || close(pe, a)) {
                return true;
            }
        }
        let mut env: Vec<(&str, f64)> = vars.iter().map(|&v| (v, 0.0)).collect();
        let mut compared = 0;
        for (k, &base) in POINTS.iter().enumerate() {
            for (j, slot) in env.iter_mut().enumerate() {
                // Different variables get different values, or x - y would vanish everywhere.
                slot.1 = base + 0.271_828 * j as f64 + 0.1 * k as f64;
            }
            let (a, b) = (g.approx(&env), p.approx(&env));
            if a.is_finite() && b.is_finite() {
                if (a - b).abs() > REL_TOL * a.abs().max(b.abs()).max(1e-300)
                    && (a - b).abs() > 1e-12
                {
                    return false;
                }
                compared += 1;
            } else if a.is_nan() != b.is_nan() || (a.is_infinite() && b.is_infinite() && a != b) {
                return false;
            }
            if vars.is_empty() {
                break;
            }
        }
        compared > 0 || g == p
    }

    /// Rule 2b: the decimal `d` (k places) stands for the exact `v` when it is `v` correctly
    /// rounded to its k places and within the relative tolerance. Two terminating decimals
    /// (integers included) are compared exactly: `16386.21 ≠ 16386.2`.
    fn decimal_close(&self, d: Ratio, v: Ratio) -> bool {
        let Some(k) = decimal_places(d) else {
            return false;
        };
        if k == 0 || decimal_places(v).is_some() {
            return false;
        }
        self.decimal_close_f64(d.to_f64(), k, v.to_f64())
    }

    fn decimal_close_f64(&self, d: f64, k: u32, v: f64) -> bool {
        if k == 0 {
            return false;
        }
        let diff = (d - v).abs();
        let half_unit = 0.5 * 10f64.powi(-(k as i32));
        let slack = 1.0 + 1e-9;
        diff <= half_unit * slack + 1e-15 * v.abs() && diff <= self.rel_tol * v.abs() * slack
    }
}

/// Decimal places of a terminating decimal (denominator `2^a·5^b`: `0.0833333` → 7, `12` →
/// 0); `None` for any other rational.
fn decimal_places(r: Ratio) -> Option<u32> {
    let mut den = r.denom();
    let (mut twos, mut fives) = (0, 0);
    while den % 2 == 0 {
        den /= 2;
        twos += 1;
    }
    while den % 5 == 0 {
        den /= 5;
        fives += 1;
    }
    (den == 1).then_some(twos.max(fives))
}

/// A name rather than a value: a symbol or a product/quotient of symbols (`x`, `a_1`, `f(x)`,
/// `|AB|`, `NO/BO`), or a tuple of names (`(p, q)`).
fn is_name(n: &Node) -> bool {
    fn symbols(e: &Expr) -> bool {
        match e {
            Expr::Var(_) => true,
            Expr::Mul(a, b) | Expr::Div(a, b) => symbols(a) && symbols(b),
            Expr::Abs(a) => symbols(a),
            _ => false,
        }
    }
    match n {
        Node::Expr(e) => symbols(e),
        Node::Tuple { items, .. } => items.iter().all(is_name),
        _ => false,
    }
}

fn closed(n: &Node) -> Option<&Expr> {
    let Node::Expr(e) = n else { return None };
    let mut vars = Vec::new();
    e.vars(&mut vars);
    vars.is_empty().then_some(e)
}

/// An inequality about one name as the interval it describes: `x \ge 5` → `[5, \infty)`,
/// `-2 < x \le 7` → `(-2, 7]`.
fn as_interval(sides: &[Node], ops: &[RelOp]) -> Option<Node> {
    use RelOp::*;
    let bracket = |op: RelOp| {
        if matches!(op, Le | Ge) {
            Bracket::Square
        } else {
            Bracket::Round
        }
    };
    let inf = || Node::Expr(Expr::Inf);
    let ninf = || Node::Expr(Expr::Neg(Box::new(Expr::Inf)));
    let interval = |lo: Node, open, hi: Node, close| Node::Tuple {
        open,
        close,
        items: vec![lo, hi],
    };
    match (sides, ops) {
        ([a, b], [op]) if matches!(op, Lt | Le | Gt | Ge) => {
            let (c, op) = if is_name(a) && closed(b).is_some() {
                (b.clone(), *op)
            } else if is_name(b) && closed(a).is_some() {
                let flipped = match op {
                    Lt => Gt,
                    Le => Ge,
                    Gt => Lt,
                    _ => Le,
                };
                (a.clone(), flipped)
            } else {
                return None;
            };
            Some(match op {
                Gt | Ge => interval(c, bracket(op), inf(), Bracket::Round),
                _ => interval(ninf(), Bracket::Round, c, bracket(op)),
            })
        }
        ([lo, x, hi], [o1, o2]) if is_name(x) && closed(lo).is_some() && closed(hi).is_some() => {
            match (o1, o2) {
                (Lt | Le, Lt | Le) => {
                    Some(interval(lo.clone(), bracket(*o1), hi.clone(), bracket(*o2)))
                }
                (Gt | Ge, Gt | Ge) => {
                    Some(interval(hi.clone(), bracket(*o2), lo.clone(), bracket(*o1)))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether `a = c·b` for one constant `c` at every test point (positive when `any_sign` is
/// false): `2x + 4y - 3` and `y + x/2 - 3/4` describe the same line. Both must vary, or any
/// two false constant equations would match.
fn proportional(a: &Expr, b: &Expr, any_sign: bool) -> bool {
    let mut vars = Vec::new();
    a.vars(&mut vars);
    b.vars(&mut vars);
    if vars.is_empty() {
        return false;
    }
    let mut env: Vec<(&str, f64)> = vars.iter().map(|&v| (v, 0.0)).collect();
    let mut ratio: Option<f64> = None;
    for (k, &base) in POINTS.iter().enumerate() {
        for (j, slot) in env.iter_mut().enumerate() {
            slot.1 = base + 0.271_828 * j as f64 + 0.1 * k as f64;
        }
        let (x, y) = (a.approx(&env), b.approx(&env));
        if !x.is_finite() || !y.is_finite() {
            return false;
        }
        if x.abs() < 1e-12 || y.abs() < 1e-12 {
            return false;
        }
        let r = x / y;
        match ratio {
            None => ratio = Some(r),
            Some(r0) if (r - r0).abs() <= REL_TOL * r.abs().max(r0.abs()) => {}
            Some(_) => return false,
        }
    }
    ratio.is_some_and(|r| any_sign || r > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, bool)] = &[
            // rule 1
            ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", true),
            // rule 2: exact rationals
            ("0.5", "\\frac{1}{2}", true), ("1/2", "\\dfrac12", true), ("0.5", "1/2", true),
            ("\\frac13", "0.333", false), ("\\frac13", "0.3333333333", true),
            ("1000", "1,000", true), ("1000", "1{,}000", true), ("1000000", "1\\,000\\,000", true),
            ("-3", "-3.0", true), ("-3", "3", false), ("3", "+3", true),
            ("1500", "1.5 \\times 10^3", true), ("0.0015", "1.5e-3", true),
            ("1024", "2^{10}", true), ("\\frac{7}{2}", "3\\frac12", true),
            ("4", "\\sqrt{16}", true), ("120", "5!", true),
            ("-\\frac{1}{2}", "\\frac{-1}{2}", true), ("-\\frac{1}{2}", "-0.5", true),
            ("\\frac{1}{2}", "\\left(\\frac{1}{2}\\right)", true),
            // rule 2b: decimals against exact values
            ("\\frac{1}{12}", "0.0833333", true), ("\\frac{1}{12}", "0.083333", false),
            ("\\frac{1}{12}", "0.0833334", false), ("16386.2", "16386.21", false), ("3", "2.9999999", false),
            ("\\sqrt2", "1.4142136", true), ("(1,\\frac{9}{2})", "(1,4.5)", true), ("11111", "11,\\!111", true),
            // rule 3: irrational and symbolic
            ("2\\sqrt{2}", "\\sqrt{8}", true), ("\\sqrt{2}", "1.414", false),
            ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}", true), ("2\\pi", "\\pi \\cdot 2", true),
            ("\\pi", "3.14", false), ("\\sqrt[3]{27}", "3", true), ("e^2", "\\exp(2)", true),
            ("x+1", "1+x", true), ("(x+1)^2", "x^2+2x+1", true), ("x^2", "x^3", false),
            ("2x", "2y", false), ("\\frac{x^2-1}{x-1}", "x+1", true),
            ("10^{10^{10}}", "10^{10^{10}}", true), ("10^{10^{10}}", "10^{10^{11}}", false),
            ("\\infty", "\\infty", true), ("\\infty", "-\\infty", false),
            // rule 4: percent, degrees, units
            ("50", "50\\%", true), ("0.5", "50\\%", true), ("50\\%", "50", true), ("50\\%", "0.5", true),
            ("50\\%", "5", false), ("50\\%", "5000", false), ("30", "30^\\circ", true), ("30^{\\circ}", "30", true),
            ("5", "5 \\text{ cm}", true), ("18", "\\$18", true), ("18", "18 dollars", true),
            // rule 5: equations
            ("3", "x = 3", true), ("x=3", "3", true), ("3", "x = 4", false), ("3", "5 = 3", false),
            ("5", "x = 2 + 3 = 5", true), ("3", "a_1 = 3", true),
            ("y = 2x + 1", "y = 1 + 2x", true), ("y=2x+1", "2x+1=y", true), ("y = 2x+1", "y = 2x", false),
            ("x < 3", "3 > x", true), ("x \\le 3", "x < 3", false),
            ("(3,2)", "(p,q) = (3,2)", true), ("(p,q)=(3,2)", "(3,2)", true), ("4, 5", "AB=4, CD=5", true),
            ("1", "f(x) = 1", true), ("1", "|AB| = 1", true), ("11", "2x = 11", false),
            ("x = 11", "x = 5 + 6 = 11", true), ("x = 11", "x = 5 + 5 = 11", false),
            ("x < 1", "-x > -1", true), ("x < 1", "x > -1", false), ("x < 1", "-x < -1", false),
            ("y = 2x + 1", "2y = 4x + 2", true), ("2x+4y-3=0", "y=-\\frac{1}{2}x+\\frac{3}{4}", true),
            ("11", "x \\approx 11", true), ("\\frac13", "x = \\frac13 \\approx 0.33", true),
            // inequalities and intervals
            ("[5, \\infty)", "x \\geq 5", true), ("x \\ge 5", "[5,\\infty)", true), ("[5,\\infty)", "x > 5", false),
            ("(-2, 7]", "-2 < x \\le 7", true), ("x \\in [-2,7]", "-2 \\le x \\le 7", true),
            ("(0, 1)", "0 < f(x) < 1", true), ("(-\\infty, 3)", "3 > x", true),
            // ratios, times, matrices
            ("\\frac{7}{32}", "7:32", true), ("12:00", "1:00", false), ("12:00", "12:00", true),
            ("\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}", "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}", true),
            ("\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}", "\\begin{bmatrix}1&2\\\\3&5\\end{bmatrix}", false),
            ("\\begin{pmatrix}\\frac13 \\\\ 2\\end{pmatrix}", "\\left[\\begin{array}{c}0.3333333 \\\\ 2\\end{array}\\right]", true),
            // rule 6: structures
            ("(1,2)", "(1, 2)", true), ("(1,2)", "(2,1)", false), ("[1,2)", "(1,2)", false),
            ("(-\\infty, 3]", "\\left(-\\infty,3\\right]", true),
            ("\\{1,2\\}", "\\{2,1\\}", true), ("1, 2", "2, 1", true), ("1,2", "\\{1, 2\\}", true),
            ("2", "2, 3", false), ("2", "2 \\text{ or } 3", false), ("2", "\\{2\\}", true),
            ("x = 1, 2", "x=2, x=1", true), ("-3, 3", "\\pm 3", true),
            ("2\\sin x \\cos x", "\\sin 2x", true), ("\\sin x \\cos x", "\\sin(x) x", false),
            ("36\\pi", "36\\pi \\text{ cm}^2", true), ("1 \\pm \\sqrt{2}", "1+\\sqrt2, 1-\\sqrt2", true),
            ("(0,1) \\cup (2,3)", "(2,3)\\cup(0,1)", true), ("(0,1) \\cup (2,3)", "(0,1)", false),
            // rule 7: text and choices
            ("\\text{Monday}", "monday", true), ("B", "(B)", true), ("B", "\\text{(B)}", true),
            ("B", "C", false),
        ];
        let mut bad = Vec::new();
        for &(g, p, want) in cases {
            if equivalent(g, p) != want {
                bad.push((g, p, want));
            }
        }
        assert!(
            bad.is_empty(),
            "wrong verdicts (gold, pred, expected): {bad:#?}"
        );
    }
}
