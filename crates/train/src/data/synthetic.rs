//! Built-in synthetic tasks: problems drawn from a seeded RNG, so no files are needed.
//!
//! - Addition: `a+b` with two `digits`-digit operands, answer the sum (the demo's task).
//! - Countdown (TinyZero): `count` numbers in 1..=max and a target reachable by combining all of
//!   them left to right with + − × ÷ (every intermediate a positive integer), so each problem
//!   has at least one solution.

use rand::seq::SliceRandom;
use rand::Rng;

use crate::data::Item;

pub fn addition<R: Rng>(rng: &mut R, digits: usize) -> Item {
    let lo = 10u64.pow(digits as u32 - 1);
    let hi = 10u64.pow(digits as u32);
    let a = rng.gen_range(lo..hi);
    let b = rng.gen_range(lo..hi);
    Item::new(format!("{a}+{b}"), Some((a + b).to_string()), None, None)
}

/// A Countdown problem; `solution` is one expression that reaches the target.
pub fn countdown_with_solution<R: Rng>(rng: &mut R, count: usize, max: i64) -> (Item, String) {
    let numbers: Vec<i64> = (0..count).map(|_| rng.gen_range(1..=max)).collect();
    let mut order = numbers.clone();
    order.shuffle(rng);
    let mut acc = order[0];
    let mut expr = acc.to_string();
    for &n in &order[1..] {
        let mut ops = vec!['+'];
        if acc > n {
            ops.push('-');
        }
        if acc * n <= 10_000 {
            ops.push('*');
        }
        if acc % n == 0 && n > 1 {
            ops.push('/');
        }
        let op = ops[rng.gen_range(0..ops.len())];
        acc = match op {
            '+' => acc + n,
            '-' => acc - n,
            '*' => acc * n,
            _ => acc / n,
        };
        expr = format!("({expr} {op} {n})");
    }
    let item = Item::new(
        countdown_problem(&numbers, acc),
        None,
        Some(numbers),
        Some(acc),
    );
    (item, expr)
}

/// The problem text of a Countdown instance (also for dataset rows that carry only the
/// numbers and the target, as TinyZero's Countdown-Tasks files do).
pub fn countdown_problem(numbers: &[i64], target: i64) -> String {
    let list = numbers
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "Using the numbers [{list}], create an equation that equals {target}. You can use basic \
         arithmetic operations (+, -, *, /) and each number can only be used once."
    )
}

pub fn countdown<R: Rng>(rng: &mut R, count: usize, max: i64) -> Item {
    countdown_with_solution(rng, count, max).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn addition_is_well_formed() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for _ in 0..100 {
            let it = addition(&mut rng, 4);
            let (a, b) = it.problem.split_once('+').unwrap();
            assert_eq!((a.len(), b.len()), (4, 4));
            let sum: u64 = a.parse::<u64>().unwrap() + b.parse::<u64>().unwrap();
            assert_eq!(it.answer.unwrap(), sum.to_string());
        }
    }

    #[test]
    fn countdown_problems_are_solvable() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..200 {
            let (it, sol) = countdown_with_solution(&mut rng, 4, 99);
            let (nums, target) = (it.numbers.unwrap(), it.target.unwrap());
            assert!(target > 0);
            assert!(
                aha_verify::countdown::solves(&sol, &nums, target, true),
                "{sol} for {nums:?} → {target}"
            );
        }
    }
}
