//! The demo's task: adding two `digits`-digit numbers, and the two ways a response can solve it.
//!
//! A [`Problem`] knows its prompt (`Q:4821+5377=`), its answer (`10198`), how many carries it
//! takes, and how to write the two kinds of response the base model learns from:
//!
//! - *think*: column work right to left inside `<think>…</think>`, then the answer,
//!   `<think>1+7+0=08 2+7+0=09 8+3+0=11 4+5+1=10</think><answer>10198</answer>`. Each column
//!   reads its two digits and the carry from the column before, and writes the two-digit column
//!   sum; the answer is the sums' last digits read back. Every column has the same width, so
//!   each digit the model needs sits at a fixed distance from where it is written: a small
//!   decoder learns this format several times faster than one with `+1` only when carrying and
//!   one-digit sums (measured: 2.4 vs 0.4 nats per response after 22K documents).
//! - *direct*: the answer alone, `<answer>10198</answer>`.
//!
//! It also gives the typical mistake of a guesser, the sum with every carry dropped
//! ([`Problem::dropped_carry_sum`]). This file is pure task logic: no tokens, no randomness other
//! than the caller's generator, no corpus mix (that is `corpus.rs`).

use rand::Rng;

/// The most operand digits the demo supports: sums stay exact in `u64` and responses short.
pub const MAX_DIGITS: usize = 9;

/// `a + b`, both with exactly `digits` digits (no leading zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Problem {
    pub a: u64,
    pub b: u64,
    pub digits: usize,
}

/// One column of the written addition, least significant first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub a: u8,
    pub b: u8,
    /// The carry coming in from the column to the right.
    pub carry_in: bool,
    /// `a + b + carry_in`, 0..=19.
    pub sum: u8,
}

impl Problem {
    /// A uniformly random problem with `digits`-digit operands (`1 ≤ digits ≤ MAX_DIGITS`,
    /// checked by the caller's config validation; out of range is clamped).
    pub fn sample<R: Rng>(rng: &mut R, digits: usize) -> Problem {
        let digits = digits.clamp(1, MAX_DIGITS);
        let lo = 10u64.pow(digits as u32 - 1);
        let hi = 10u64.pow(digits as u32);
        Problem {
            a: rng.gen_range(lo..hi),
            b: rng.gen_range(lo..hi),
            digits,
        }
    }

    pub fn sum(&self) -> u64 {
        self.a + self.b
    }

    /// The prompt the model completes: the R1-Zero template shrunk to the task.
    pub fn prompt(&self) -> String {
        format!("Q:{}+{}=", self.a, self.b)
    }

    /// The reference answer as the verifier wants it: the integer, no leading zeros.
    pub fn answer(&self) -> String {
        self.sum().to_string()
    }

    /// The columns of the written addition, least significant first.
    pub fn columns(&self) -> Vec<Column> {
        let (mut a, mut b, mut carry) = (self.a, self.b, false);
        (0..self.digits)
            .map(|_| {
                let (da, db) = ((a % 10) as u8, (b % 10) as u8);
                let sum = da + db + u8::from(carry);
                let col = Column {
                    a: da,
                    b: db,
                    carry_in: carry,
                    sum,
                };
                carry = sum >= 10;
                a /= 10;
                b /= 10;
                col
            })
            .collect()
    }

    /// How many columns carry into the next one (the final carry into a new digit counts).
    pub fn carries(&self) -> usize {
        self.columns().iter().filter(|c| c.sum >= 10).count()
    }

    /// The answer a guesser gives when it forgets to carry: each column's sum mod 10.
    pub fn dropped_carry_sum(&self) -> u64 {
        let (mut a, mut b, mut place, mut out) = (self.a, self.b, 1u64, 0u64);
        while a > 0 || b > 0 {
            out += ((a % 10 + b % 10) % 10) * place;
            a /= 10;
            b /= 10;
            place *= 10;
        }
        out
    }

    /// The column work, `1+7+0=08 2+7+0=09 8+3+0=11 4+5+1=10`.
    pub fn column_work(&self) -> String {
        self.columns()
            .iter()
            .map(|c| format!("{}+{}+{}={:02}", c.a, c.b, u8::from(c.carry_in), c.sum))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A think response: column work, then the (correct) answer.
    pub fn think_completion(&self) -> String {
        format!(
            "<think>{}</think>{}",
            self.column_work(),
            direct_completion(&self.answer())
        )
    }
}

/// A direct response giving `answer`.
pub fn direct_completion(answer: &str) -> String {
    format!("<answer>{answer}</answer>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_design_example() {
        let p = Problem {
            a: 4821,
            b: 5377,
            digits: 4,
        };
        assert_eq!(p.prompt(), "Q:4821+5377=");
        assert_eq!(p.answer(), "10198");
        assert_eq!(p.column_work(), "1+7+0=08 2+7+0=09 8+3+0=11 4+5+1=10");
        assert_eq!(p.carries(), 2);
        assert_eq!(p.dropped_carry_sum(), 9198);
        assert_eq!(
            p.think_completion(),
            "<think>1+7+0=08 2+7+0=09 8+3+0=11 4+5+1=10</think><answer>10198</answer>"
        );
    }

    #[test]
    fn carries_and_dropped_carries() {
        let p = |a, b| Problem { a, b, digits: 4 };
        assert_eq!(p(1234, 4321).carries(), 0);
        assert_eq!(p(1234, 4321).dropped_carry_sum(), 5555);
        assert_eq!(p(9999, 1111).carries(), 4);
        assert_eq!(p(9999, 1111).dropped_carry_sum(), 0);
        assert_eq!(p(1999, 1001).carries(), 3);
        assert_eq!(
            p(1999, 1001).column_work(),
            "9+1+0=10 9+0+1=10 9+0+1=10 1+1+1=03"
        );
    }

    #[test]
    fn column_sums_rebuild_the_answer() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for digits in 1..=MAX_DIGITS {
            for _ in 0..200 {
                let p = Problem::sample(&mut rng, digits);
                assert_eq!(p.a.to_string().len(), digits);
                assert_eq!(p.b.to_string().len(), digits);
                let cols = p.columns();
                let mut rebuilt = 0u64;
                for (i, c) in cols.iter().enumerate() {
                    rebuilt += u64::from(c.sum % 10) * 10u64.pow(i as u32);
                }
                if cols.last().is_some_and(|c| c.sum >= 10) {
                    rebuilt += 10u64.pow(digits as u32);
                }
                assert_eq!(rebuilt, p.sum(), "{p:?}");
                assert_eq!(p.carries() == 0, p.dropped_carry_sum() == p.sum(), "{p:?}");
            }
        }
    }
}
