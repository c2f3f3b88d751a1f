//! Mathematical equivalence of a predicted answer and a reference answer, without a CAS.
//!
//! The rules, applied to the parsed answers (see `expr.rs`):
//!
//! 1. **Same text**: identical after dropping whitespace, `$`, `\left`/`\right` and spacing
//!    commands → equal (also how matrices and other unparsed answers can still match).
//! 2. **Numbers** that are rational (integers, decimals, fractions, `1.5e3`, `2^{10}`,
//!    `\sqrt{16}`, `5!`) are compared *exactly* as bounded rationals: `0.5 = \frac12 = 1/2`,
//!    but `0.333 ≠ \frac13`.
//! 3. **Other scalars** (`\sqrt2`, `\pi`, `e`, variables) are evaluated in `f64` at
//!    [`POINTS`] fixed pseudo-random points for the union of their variables, and must agree to
//!    a relative 1e-9 at every point where both are finite. This decides `2\sqrt{2} = \sqrt8`,
//!    `\frac{x^2-1}{x-1} = x+1` and `(x+1)^2 = x^2+2x+1` cheaply; the chance that two different
//!    closed forms agree to 9 digits at all points is negligible for answers of this size. If
//!    no point is finite on both sides (`10^{10^{10}}`), the parse trees must be identical.
//! 4. **Percent**: `p\%` equals `p` and `p/100`, so "50%", "50" and "0.5" all match a reference
//!    of 50 or of `50\%`. Degrees and units in `\text{}` were already dropped by the lexer.
//! 5. **Equations**: a scalar reference `r` matches `x = r`, `a_1 = r`, and chains
//!    `x = 2 + 3 = 5` when the last side equals `r` and every other side is a single symbol or a
//!    closed expression also equal to `r` (so `5 = 3` never matches 3). Two equations match when
//!    `lhs − rhs` agree up to sign; inequalities when they agree after flipping `>` to `<`.
//! 6. **Tuples and intervals** are ordered and their brackets must match: `(1,2) ≠ (2,1)`,
//!    `[1,2) ≠ (1,2)`. **Sets** (`\{…\}`, or a bare list `1, 2`) and **unions** are unordered:
//!    every element of each side must match one on the other. A one-element set matches its
//!    element, but a bare list never matches a single value: `2, 3` does not answer 2, so
//!    hedging with "2 or 3" earns nothing.
//! 7. **Text** answers (no mathematics) match when their words are equal, case-insensitively.
//!
//! Anything that fails to parse only matches by rule 1.

use crate::expr::{parse_answer, Expr, Node};
use crate::latex::RelOp;

/// Variable assignments tried by rule 3. Values avoid 0, 1 and small integers, where distinct
/// polynomials most often coincide, and stay positive so `\sqrt{x}` and `\ln x` are defined.
pub const POINTS: [f64; 3] = [0.577_215_664_9, 1.324_717_957_2, 2.029_883_212_8];
const REL_TOL: f64 = 1e-9;

/// True when `pred` is an acceptable answer for the reference answer `gold` (both answer
/// strings, not full responses; see `extract.rs`).
pub fn equivalent(gold: &str, pred: &str) -> bool {
    if squash_eq(gold, pred) {
        return true;
    }
    match (parse_answer(gold), parse_answer(pred)) {
        (Ok(g), Ok(p)) => nodes_equal(&g, &p),
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

fn nodes_equal(gold: &Node, pred: &Node) -> bool {
    use Node::*;
    match (gold, pred) {
        (Expr(g), Expr(p)) => scalar_equal(g, p),
        (Text(g), Text(p)) => g == p,
        (Expr(_), Rel { sides, ops }) => chain_equals(sides, ops, gold),
        (Rel { sides, ops }, Expr(_)) => chain_equals(sides, ops, pred),
        (Rel { .. }, Rel { .. }) => relations_equal(gold, pred),
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
                && gi.iter().zip(pi).all(|(g, p)| nodes_equal(g, p))
        }
        (Set(g), Set(p)) | (Union(g), Union(p)) => same_elements(g, p),
        (Set(g), other) if g.len() == 1 => nodes_equal(&g[0], other),
        (other, Set(p)) if p.len() == 1 => nodes_equal(other, &p[0]),
        _ => false,
    }
}

/// Largest set compared element by element; the comparison is quadratic, and no answer key
/// lists more solutions than this.
pub const MAX_SET_LEN: usize = 64;

fn same_elements(a: &[Node], b: &[Node]) -> bool {
    if a.len() > MAX_SET_LEN || b.len() > MAX_SET_LEN {
        return false;
    }
    a.iter().all(|x| b.iter().any(|y| nodes_equal(x, y)))
        && b.iter().all(|y| a.iter().any(|x| nodes_equal(x, y)))
}

/// Rule 5, equation against a scalar.
fn chain_equals(sides: &[Node], ops: &[RelOp], scalar: &Node) -> bool {
    if ops.iter().any(|&op| op != RelOp::Eq) {
        return false;
    }
    let Some((last, rest)) = sides.split_last() else {
        return false;
    };
    nodes_equal(scalar, last)
        && rest.iter().all(|side| match side {
            Node::Expr(Expr::Var(_)) => true,
            Node::Expr(e) => {
                let mut vars = Vec::new();
                e.vars(&mut vars);
                vars.is_empty() && nodes_equal(scalar, side)
            }
            _ => false,
        })
}

/// Rule 5, two relations of two sides each.
fn relations_equal(gold: &Node, pred: &Node) -> bool {
    let (Some((gl, gop, gr)), Some((pl, pop, pr))) = (oriented(gold), oriented(pred)) else {
        return false;
    };
    if gop != pop {
        return false;
    }
    match gop {
        RelOp::Eq | RelOp::Ne => {
            let gd = Expr::Sub(Box::new(gl.clone()), Box::new(gr.clone()));
            let pd = Expr::Sub(Box::new(pl.clone()), Box::new(pr.clone()));
            scalar_equal(&gd, &pd) || scalar_equal(&gd, &Expr::Neg(Box::new(pd)))
        }
        _ => scalar_equal(gl, pl) && scalar_equal(gr, pr),
    }
}

/// A two-sided relation with `>`/`≥` flipped to `<`/`≤`.
fn oriented(n: &Node) -> Option<(&Expr, RelOp, &Expr)> {
    let Node::Rel { sides, ops } = n else {
        return None;
    };
    let ([Node::Expr(l), Node::Expr(r)], [op]) = (sides.as_slice(), ops.as_slice()) else {
        return None;
    };
    Some(match op {
        RelOp::Gt => (r, RelOp::Lt, l),
        RelOp::Ge => (r, RelOp::Le, l),
        _ => (l, *op, r),
    })
}

/// Rules 2–4.
fn scalar_equal(g: &Expr, p: &Expr) -> bool {
    match (g, p) {
        (Expr::Percent(a), Expr::Percent(b)) => return scalar_equal(a, b),
        (Expr::Percent(a), other) | (other, Expr::Percent(a)) => {
            return value_equal(a, other) || value_equal(&Expr::Percent(a.clone()), other);
        }
        _ => {}
    }
    value_equal(g, p)
}

fn value_equal(g: &Expr, p: &Expr) -> bool {
    if let (Some(a), Some(b)) = (g.exact(), p.exact()) {
        return a == b;
    }
    let mut vars = Vec::new();
    g.vars(&mut vars);
    p.vars(&mut vars);
    let mut env: Vec<(&str, f64)> = vars.iter().map(|&v| (v, 0.0)).collect();
    let mut compared = 0;
    for (k, &base) in POINTS.iter().enumerate() {
        for (j, slot) in env.iter_mut().enumerate() {
            // Different variables get different values, or x - y would vanish everywhere.
            slot.1 = base + 0.271_828 * j as f64 + 0.1 * k as f64;
        }
        let (a, b) = (g.approx(&env), p.approx(&env));
        if a.is_finite() && b.is_finite() {
            if (a - b).abs() > REL_TOL * a.abs().max(b.abs()).max(1e-300) && (a - b).abs() > 1e-12 {
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
            ("\\frac13", "0.333", false), ("\\frac13", "0.3333333333", false),
            ("1000", "1,000", true), ("1000", "1{,}000", true), ("1000000", "1\\,000\\,000", true),
            ("-3", "-3.0", true), ("-3", "3", false), ("3", "+3", true),
            ("1500", "1.5 \\times 10^3", true), ("0.0015", "1.5e-3", true),
            ("1024", "2^{10}", true), ("\\frac{7}{2}", "3\\frac12", true),
            ("4", "\\sqrt{16}", true), ("120", "5!", true),
            ("-\\frac{1}{2}", "\\frac{-1}{2}", true), ("-\\frac{1}{2}", "-0.5", true),
            ("\\frac{1}{2}", "\\left(\\frac{1}{2}\\right)", true),
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
