//! The base model's pretraining corpus: addition problems solved in a mix of styles.
//!
//! The mix is what makes the demo tell R1-Zero's story (see DESIGN.md, "The demo"): a small share
//! of responses think step by step and are always right; the rest answer directly and are right
//! mostly when the problem is easy (no carries). A model pretrained on it has the thinking skill
//! but on its own prefers the short way, like a pretrained LM that has seen worked solutions
//! without being asked to produce them. RL with a correctness reward then only has to discover
//! that the rare long way pays.
//!
//! A wrong direct answer is the sum with every carry dropped — the mistake a guesser makes, and
//! one that is wrong on every problem with a carry — or, on a problem without carries, the right
//! sum with one digit changed. Which problem, style and mistake are drawn from the caller's
//! seeded generator; problems in `held_out` are never emitted, so evaluation stays unseen.

use std::collections::HashSet;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::task::{direct_completion, Problem};

/// How the corpus mixes the two styles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusMix {
    /// Share of responses that think (column work), always right.
    pub think_share: f64,
    /// Probability that a direct answer is right, by number of carries; problems with more
    /// carries than listed use the last entry.
    pub direct_right: Vec<f64>,
}

impl Default for CorpusMix {
    /// The prototype's mix: 10% think; direct answers right 90% / 30% / never for 0 / 1 / 2+
    /// carries. With less thinking (2%) or with direct answers sometimes right on hard problems,
    /// RL sharpens the direct guesser instead and responses stay short.
    fn default() -> Self {
        CorpusMix {
            think_share: 0.10,
            direct_right: vec![0.9, 0.3, 0.0],
        }
    }
}

impl CorpusMix {
    fn direct_right_given(&self, carries: usize) -> f64 {
        let last = self.direct_right.len().saturating_sub(1);
        self.direct_right
            .get(carries.min(last))
            .copied()
            .unwrap_or(0.0)
    }
}

/// How a response solves its problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Style {
    Think,
    Direct,
}

/// One pretraining document: a prompt and a response in one of the two styles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub problem: Problem,
    pub style: Style,
    /// Whether the response's answer is the true sum.
    pub correct: bool,
    /// The response text, without the end-of-sequence token.
    pub completion: String,
}

impl Example {
    /// Prompt and response as one document.
    pub fn text(&self) -> String {
        format!("{}{}", self.problem.prompt(), self.completion)
    }
}

/// Draws one document, skipping problems in `held_out`.
pub fn sample_example<R: Rng>(
    rng: &mut R,
    digits: usize,
    mix: &CorpusMix,
    held_out: &HashSet<Problem>,
) -> Example {
    let problem = loop {
        let p = Problem::sample(rng, digits);
        if !held_out.contains(&p) {
            break p;
        }
    };
    if rng.gen_bool(mix.think_share.clamp(0.0, 1.0)) {
        return Example {
            problem,
            style: Style::Think,
            correct: true,
            completion: problem.think_completion(),
        };
    }
    let carries = problem.carries();
    let correct = rng.gen_bool(mix.direct_right_given(carries).clamp(0.0, 1.0));
    let answer = if correct {
        problem.sum()
    } else if carries > 0 {
        problem.dropped_carry_sum()
    } else {
        change_one_digit(rng, problem.sum())
    };
    Example {
        problem,
        style: Style::Direct,
        correct,
        completion: direct_completion(&answer.to_string()),
    }
}

/// `n` documents from a generator seeded with `seed`.
pub fn generate(
    n: usize,
    digits: usize,
    mix: &CorpusMix,
    seed: u64,
    held_out: &HashSet<Problem>,
) -> Vec<Example> {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| sample_example(&mut rng, digits, mix, held_out))
        .collect()
}

/// `x` with one digit replaced by a different one (never a leading zero).
fn change_one_digit<R: Rng>(rng: &mut R, x: u64) -> u64 {
    let mut digits: Vec<u8> = x.to_string().bytes().map(|b| b - b'0').collect();
    let i = rng.gen_range(0..digits.len());
    let lowest = u8::from(i == 0 && digits.len() > 1);
    loop {
        let d = rng.gen_range(lowest..10);
        if d != digits[i] {
            digits[i] = d;
            break;
        }
    }
    digits.iter().fold(0u64, |acc, &d| acc * 10 + u64::from(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_matches_the_prototype_statistics() {
        let held: HashSet<Problem> = HashSet::new();
        let docs = generate(20_000, 4, &CorpusMix::default(), 1, &held);
        let think = docs.iter().filter(|d| d.style == Style::Think).count() as f64;
        assert!(
            (think / 20_000.0 - 0.10).abs() < 0.01,
            "think share {think}"
        );
        for d in &docs {
            let right = d
                .completion
                .ends_with(&format!("<answer>{}</answer>", d.problem.answer()));
            assert_eq!(right, d.correct, "{d:?}");
            match d.style {
                Style::Think => assert!(d.correct && d.completion.starts_with("<think>")),
                Style::Direct => assert!(d.completion.starts_with("<answer>")),
            }
        }
        let rate = |carries: &dyn Fn(usize) -> bool| {
            let sel: Vec<_> = docs
                .iter()
                .filter(|d| d.style == Style::Direct && carries(d.problem.carries()))
                .collect();
            sel.iter().filter(|d| d.correct).count() as f64 / sel.len() as f64
        };
        assert!((rate(&|c| c == 0) - 0.9).abs() < 0.05);
        assert!((rate(&|c| c == 1) - 0.3).abs() < 0.05);
        assert_eq!(rate(&|c| c >= 2), 0.0);
    }

    #[test]
    fn seeded_and_held_out() {
        let first = generate(500, 4, &CorpusMix::default(), 3, &HashSet::new());
        assert_eq!(
            first,
            generate(500, 4, &CorpusMix::default(), 3, &HashSet::new())
        );
        assert_ne!(
            first,
            generate(500, 4, &CorpusMix::default(), 4, &HashSet::new())
        );
        let held: HashSet<Problem> = first.iter().take(100).map(|d| d.problem).collect();
        let again = generate(500, 4, &CorpusMix::default(), 3, &held);
        assert!(again.iter().all(|d| !held.contains(&d.problem)));
    }

    #[test]
    fn changed_digit_differs_and_keeps_length() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        for x in [5u64, 10, 5555, 10198, 99999] {
            for _ in 0..50 {
                let y = change_one_digit(&mut rng, x);
                assert_ne!(x, y);
                assert_eq!(x.to_string().len(), y.to_string().len());
            }
        }
    }
}
