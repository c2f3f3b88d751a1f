//! A bounded exact rational number on `i128`.
//!
//! Every operation is checked: a result that does not fit returns `None` instead of wrapping or
//! growing. Callers treat `None` as "not exactly representable" and fall back to floating point,
//! which is what bounds the work done on adversarial inputs such as `10^{10^{10}}` (see
//! [`Ratio::pow`]). This type does not parse LaTeX; see `expr.rs` for that.

use std::cmp::Ordering;
use std::fmt;

/// Largest exponent magnitude [`Ratio::pow`] attempts; anything larger overflows `i128` for every
/// base other than 0 and ±1, so it is refused up front rather than computed.
pub const MAX_EXACT_EXPONENT: i128 = 127;

/// An exact rational `num / den` in lowest terms with `den > 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ratio {
    num: i128,
    den: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    // Callers keep both operands away from i128::MIN, so abs cannot overflow.
    a = a.abs();
    b = b.abs();
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

impl Ratio {
    /// Zero.
    pub const ZERO: Ratio = Ratio { num: 0, den: 1 };
    /// One.
    pub const ONE: Ratio = Ratio { num: 1, den: 1 };

    /// `num / den` reduced; `None` when `den == 0` or an operand is `i128::MIN` (whose negation
    /// does not fit).
    pub fn new(num: i128, den: i128) -> Option<Ratio> {
        if den == 0 || num == i128::MIN || den == i128::MIN {
            return None;
        }
        let g = gcd(num, den).max(1);
        let (mut n, mut d) = (num / g, den / g);
        if d < 0 {
            n = -n;
            d = -d;
        }
        Some(Ratio { num: n, den: d })
    }

    /// The integer `n`.
    pub fn from_int(n: i128) -> Option<Ratio> {
        Ratio::new(n, 1)
    }

    /// Numerator (sign carrier).
    pub fn numer(&self) -> i128 {
        self.num
    }

    /// Denominator, always positive.
    pub fn denom(&self) -> i128 {
        self.den
    }

    /// True when the denominator is 1.
    pub fn is_integer(&self) -> bool {
        self.den == 1
    }

    /// Parses a plain decimal literal: digits with at most one `.`, an optional leading `-`, and
    /// an optional exponent `e[+-]digits`. `None` if malformed or too large to be exact.
    pub fn parse_decimal(s: &str) -> Option<Ratio> {
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (mantissa, exp) = match body.find(['e', 'E']) {
            Some(i) => (&body[..i], body[i + 1..].parse::<i32>().ok()?),
            None => (body, 0),
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let mut num: i128 = 0;
        for c in int_part.chars().chain(frac_part.chars()) {
            let d = c.to_digit(10)? as i128;
            num = num.checked_mul(10)?.checked_add(d)?;
        }
        let scale = i32::try_from(frac_part.len()).ok()?.checked_sub(exp)?;
        let r = if scale >= 0 {
            Ratio::new(num, 10i128.checked_pow(scale as u32)?)?
        } else {
            Ratio::new(
                num.checked_mul(10i128.checked_pow(scale.unsigned_abs())?)?,
                1,
            )?
        };
        Some(if neg { r.neg() } else { r })
    }

    /// `-self`.
    #[allow(clippy::should_implement_trait)]
    pub fn neg(self) -> Ratio {
        // num is never i128::MIN (see new), so this cannot overflow.
        Ratio {
            num: -self.num,
            den: self.den,
        }
    }

    /// `self + o`, `None` on overflow.
    pub fn checked_add(self, o: Ratio) -> Option<Ratio> {
        let g = gcd(self.den, o.den);
        let lhs = self.num.checked_mul(o.den / g)?;
        let rhs = o.num.checked_mul(self.den / g)?;
        Ratio::new(lhs.checked_add(rhs)?, (self.den / g).checked_mul(o.den)?)
    }

    /// `self - o`, `None` on overflow.
    pub fn checked_sub(self, o: Ratio) -> Option<Ratio> {
        self.checked_add(o.neg())
    }

    /// `self * o`, `None` on overflow.
    pub fn checked_mul(self, o: Ratio) -> Option<Ratio> {
        // Cross-reduce first so products stay as small as the result allows.
        let g1 = gcd(self.num, o.den).max(1);
        let g2 = gcd(o.num, self.den).max(1);
        let n = (self.num / g1).checked_mul(o.num / g2)?;
        let d = (self.den / g2).checked_mul(o.den / g1)?;
        Ratio::new(n, d)
    }

    /// `self / o`; `None` on overflow or division by zero.
    pub fn checked_div(self, o: Ratio) -> Option<Ratio> {
        if o.num == 0 {
            return None;
        }
        self.checked_mul(
            Ratio {
                num: o.den,
                den: o.num,
            }
            .normalised()?,
        )
    }

    fn normalised(self) -> Option<Ratio> {
        Ratio::new(self.num, self.den)
    }

    /// `self^e` for an integer exponent with `|e| <= MAX_EXACT_EXPONENT`; `None` otherwise, on
    /// overflow, or for `0^negative`. The exponent cap makes the loop at most 7 squarings.
    pub fn pow(self, e: i128) -> Option<Ratio> {
        if self.num == 0 && e < 0 {
            return None;
        }
        if self == Ratio::ONE || (self.num == 0 && e > 0) {
            return Some(self);
        }
        if self.den == 1 && self.num == -1 {
            return Some(if e % 2 == 0 { Ratio::ONE } else { self });
        }
        if e.abs() > MAX_EXACT_EXPONENT {
            return None;
        }
        let mag = e.unsigned_abs() as u32;
        let n = self.num.checked_pow(mag)?;
        let d = self.den.checked_pow(mag)?;
        if e >= 0 {
            Ratio::new(n, d)
        } else {
            Ratio::new(d, n)
        }
    }

    /// Exact square root when both numerator and denominator are perfect squares.
    pub fn sqrt(self) -> Option<Ratio> {
        if self.num < 0 {
            return None;
        }
        Ratio::new(isqrt_exact(self.num)?, isqrt_exact(self.den)?)
    }

    /// Nearest `f64` (exact for small values).
    pub fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

fn isqrt_exact(n: i128) -> Option<i128> {
    let guess = (n as f64).sqrt().round() as i128;
    (guess.saturating_sub(1)..=guess.saturating_add(1))
        .find(|&r| r >= 0 && r.checked_mul(r) == Some(n))
}

impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ratio {
    fn cmp(&self, other: &Self) -> Ordering {
        match (
            self.num.checked_mul(other.den),
            other.num.checked_mul(self.den),
        ) {
            (Some(a), Some(b)) => a.cmp(&b),
            // Beyond i128 the float order is the best cheap answer; ties there are vanishingly rare.
            _ => self
                .to_f64()
                .partial_cmp(&other.to_f64())
                .unwrap_or(Ordering::Equal),
        }
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: i128, d: i128) -> Ratio {
        Ratio::new(n, d).unwrap()
    }

    #[test]
    fn reduces_and_normalises_sign() {
        assert_eq!(r(2, 4), r(1, 2));
        assert_eq!(r(1, -2), r(-1, 2));
        assert_eq!(r(0, -5), Ratio::ZERO);
        assert!(Ratio::new(1, 0).is_none());
    }

    #[test]
    fn parses_decimals_exactly() {
        let cases = [
            ("0.5", Some(r(1, 2))),
            ("-0.25", Some(r(-1, 4))),
            (".5", Some(r(1, 2))),
            ("3.", Some(r(3, 1))),
            ("1.5e3", Some(r(1500, 1))),
            ("2E-2", Some(r(1, 50))),
            ("12", Some(r(12, 1))),
            ("1.2.3", None),
            ("", None),
            ("1e400", None),
            ("99999999999999999999999999999999999999999", None),
        ];
        for (s, want) in cases {
            assert_eq!(Ratio::parse_decimal(s), want, "{s}");
        }
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(r(1, 2).checked_add(r(1, 3)), Some(r(5, 6)));
        assert_eq!(r(1, 2).checked_sub(r(1, 2)), Some(Ratio::ZERO));
        assert_eq!(r(2, 3).checked_mul(r(3, 4)), Some(r(1, 2)));
        assert_eq!(r(1, 2).checked_div(r(0, 1)), None);
        assert_eq!(r(i128::MAX, 1).checked_add(r(1, 1)), None);
        assert_eq!(r(i128::MAX, 1).checked_mul(r(2, 1)), None);
    }

    #[test]
    fn pow_is_bounded() {
        assert_eq!(r(2, 3).pow(3), Some(r(8, 27)));
        assert_eq!(r(2, 1).pow(-2), Some(r(1, 4)));
        assert_eq!(r(10, 1).pow(10_000_000_000), None);
        assert_eq!(r(1, 1).pow(10_000_000_000), Some(Ratio::ONE));
        assert_eq!(r(0, 1).pow(-1), None);
        assert_eq!(r(2, 1).pow(200), None);
    }

    #[test]
    fn sqrt_only_when_exact() {
        assert_eq!(r(9, 4).sqrt(), Some(r(3, 2)));
        assert_eq!(r(2, 1).sqrt(), None);
        assert_eq!(r(-4, 1).sqrt(), None);
    }

    #[test]
    fn orders() {
        assert!(r(1, 3) < r(1, 2));
        assert!(r(-1, 2) < Ratio::ZERO);
    }
}
