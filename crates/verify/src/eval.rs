//! Evaluating a scalar [`Expr`]: exactly, as a bounded [`Ratio`], when the value is rational;
//! otherwise approximately, as `f64` at given variable values. Comparing values is `math.rs`'s
//! job. Exact evaluation refuses rather than grows: `i128` overflow, exponents beyond
//! [`crate::rational::MAX_EXACT_EXPONENT`], factorials beyond 33! and binomials beyond n = 10 000
//! all give `None`, and the float path takes over.

use crate::expr::Expr;
use crate::latex::Func;
use crate::rational::Ratio;

fn small_int(r: Ratio, max: i128) -> Option<i128> {
    (r.is_integer() && (0..=max).contains(&r.numer())).then_some(r.numer())
}

impl Expr {
    /// The exact rational value, when the expression is rational and every intermediate fits
    /// (see [`Ratio`]); `None` for irrational values, variables, or anything too large.
    pub fn exact(&self) -> Option<Ratio> {
        use Expr::*;
        match self {
            Num(r) => Some(*r),
            Float(_) | Pi | E | Inf | Var(_) | Func(..) | LogBase(..) => None,
            Neg(a) => Some(a.exact()?.neg()),
            Add(a, b) => a.exact()?.checked_add(b.exact()?),
            Sub(a, b) => a.exact()?.checked_sub(b.exact()?),
            Mul(a, b) => a.exact()?.checked_mul(b.exact()?),
            Div(a, b) => a.exact()?.checked_div(b.exact()?),
            Pow(a, b) => {
                let e = b.exact()?;
                let base = a.exact()?;
                if e.is_integer() {
                    base.pow(e.numer())
                } else if e.denom() == 2 {
                    base.pow(e.numer())?.sqrt()
                } else {
                    None
                }
            }
            Sqrt(a) => a.exact()?.sqrt(),
            Root(..) => None,
            Abs(a) => {
                let v = a.exact()?;
                Some(if v < Ratio::ZERO { v.neg() } else { v })
            }
            Fact(a) => {
                let n = small_int(a.exact()?, 33)?;
                (1..=n).try_fold(Ratio::ONE, |acc, k| acc.checked_mul(Ratio::from_int(k)?))
            }
            Binom(n, k) => {
                let n = small_int(n.exact()?, 10_000)?;
                let k = small_int(k.exact()?, n)?;
                let k = k.min(n - k);
                (1..=k).try_fold(Ratio::ONE, |acc, i| {
                    acc.checked_mul(Ratio::new(n - k + i, i)?)
                })
            }
            Percent(a) => a.exact()?.checked_div(Ratio::from_int(100)?),
        }
    }

    /// The `f64` value with variables bound by `env` (unbound variables give NaN).
    pub fn approx(&self, env: &[(&str, f64)]) -> f64 {
        use Expr::*;
        match self {
            Num(r) => r.to_f64(),
            Float(x) => *x,
            Pi => std::f64::consts::PI,
            E => std::f64::consts::E,
            Inf => f64::INFINITY,
            Var(v) => env
                .iter()
                .find(|(n, _)| *n == &**v)
                .map_or(f64::NAN, |(_, x)| *x),
            Neg(a) => -a.approx(env),
            Add(a, b) => a.approx(env) + b.approx(env),
            Sub(a, b) => a.approx(env) - b.approx(env),
            Mul(a, b) => a.approx(env) * b.approx(env),
            Div(a, b) => a.approx(env) / b.approx(env),
            Pow(a, b) => a.approx(env).powf(b.approx(env)),
            Sqrt(a) => a.approx(env).sqrt(),
            Root(n, a) => {
                let (n, x) = (n.approx(env), a.approx(env));
                // Odd roots of negatives are real.
                if x < 0.0 && n.fract() == 0.0 && n % 2.0 != 0.0 {
                    -(-x).powf(1.0 / n)
                } else {
                    x.powf(1.0 / n)
                }
            }
            Func(f, a) => apply(*f, a.approx(env)),
            LogBase(b, a) => a.approx(env).ln() / b.approx(env).ln(),
            Abs(a) => a.approx(env).abs(),
            Fact(a) => {
                let n = a.approx(env);
                if n.fract() != 0.0 || n < 0.0 {
                    f64::NAN
                } else if n > 170.0 {
                    f64::INFINITY
                } else {
                    (1..=n as u32).map(f64::from).product()
                }
            }
            Binom(n, k) => {
                let (n, k) = (n.approx(env), k.approx(env));
                if k.fract() != 0.0 || !(0.0..=10_000.0).contains(&k) {
                    return f64::NAN;
                }
                (1..=k as u32).fold(1.0, |acc, i| acc * (n - k + f64::from(i)) / f64::from(i))
            }
            Percent(a) => a.approx(env) / 100.0,
        }
    }

    /// Appends the names of free variables not already in `out`.
    pub fn vars<'a>(&'a self, out: &mut Vec<&'a str>) {
        use Expr::*;
        match self {
            Var(v) => {
                if !out.contains(&&**v) {
                    out.push(v);
                }
            }
            Num(_) | Float(_) | Pi | E | Inf => {}
            Neg(a) | Sqrt(a) | Func(_, a) | Abs(a) | Fact(a) | Percent(a) => a.vars(out),
            Add(a, b)
            | Sub(a, b)
            | Mul(a, b)
            | Div(a, b)
            | Pow(a, b)
            | Root(a, b)
            | LogBase(a, b)
            | Binom(a, b) => {
                a.vars(out);
                b.vars(out);
            }
        }
    }
}

fn apply(f: Func, x: f64) -> f64 {
    match f {
        Func::Sin => x.sin(),
        Func::Cos => x.cos(),
        Func::Tan => x.tan(),
        Func::Cot => 1.0 / x.tan(),
        Func::Sec => 1.0 / x.cos(),
        Func::Csc => 1.0 / x.sin(),
        Func::Arcsin => x.asin(),
        Func::Arccos => x.acos(),
        Func::Arctan => x.atan(),
        Func::Ln => x.ln(),
        Func::Log => x.log10(),
        Func::Exp => x.exp(),
    }
}
