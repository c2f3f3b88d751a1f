//! Rule-based verifiers that turn a model's completion into a reward, as in DeepSeek-R1.
//!
//! The principal types: a [`Reward`] is a validated, weighted list of [`RewardSpec`] terms (the
//! trainer's `[[reward]]` tables); [`Reward::score`] judges one completion against a
//! [`Reference`] and returns a [`Scored`] whose terms are `Option<f32>` — `None` means "cannot
//! judge", excluded from the sum, never 0. The terms are plain functions you can also call
//! directly:
//!
//! - [`extract()`](extract::extract) finds the final answer under an [`ExtractConfig`]: the
//!   strict preset (training) reads `<answer>`, the last `\boxed{}` group, "final answer is"
//!   and `####`, the last marker winning; the lenient preset (Math-Verify's reading) adds the last
//!   LaTeX expression and the last number. On Math-Verify's own 270-case test suite aha agrees
//!   on 92.6% (lenient) and 51.1% (strict; see `tests/math_verify_suite.rs`);
//! - [`equivalent`] decides mathematical equivalence of two answer strings: exact bounded
//!   rationals ([`Ratio`]) for numbers, a relative tolerance between a decimal and an exact
//!   value, evaluation at fixed points for everything symbolic, and explicit rules for percent,
//!   equations, inequalities as intervals, tuples, sets and matrices (documented in `math.rs`);
//! - [`format_reward`] checks the R1 template via [`split_blocks`];
//! - [`arithmetic_reward`] wants an exactly-written integer in a well-formed response;
//! - [`countdown_reward`] checks a TinyZero Countdown expression;
//! - [`language_reward`] measures the share of the reasoning in a target [`Script`];
//! - [`code::CodeRunner`] runs a completion's last python block against test cases in a
//!   bubblewrap sandbox (see [`code`]).
//!
//! External terms — rewards judged outside aha, a batch at a time — implement [`BatchReward`]
//! over [`RewardInput`]s (completion, prompt and the dataset row) and return [`Judgement`]s;
//! [`Reward::score_batch`] runs them beside the built-in terms.
//!
//! [`score_jsonl`] scores a JSONL file for a [`Task`] (the library side of `aha reward`).
//!
//! Every verifier does bounded work on any input: answers over 1000 bytes are refused, parsing
//! nests at most 64 deep, exact powers are capped, and at most 8 boxes are brace-matched, so a
//! call costs time linear in the completion length (see `tests/adversarial.rs`).
//!
//! ```
//! use aha_verify::{math_correct, Reference, Reward, RewardSpec, ThinkRule};
//!
//! assert_eq!(math_correct("<think>…</think><answer>\\dfrac12</answer>", "0.5"), Some(true));
//! let reward = Reward::new(vec![
//!     RewardSpec::Arithmetic { weight: 1.0, think: ThinkRule::Optional },
//!     RewardSpec::Format { weight: 0.5, think: ThinkRule::Required },
//! ])?;
//! let scored = reward.score("<answer>10198</answer>", &Reference::answer("10198"));
//! assert_eq!((scored.reward, scored.correct), (Some(1.0), Some(true)));
//! # Ok::<(), aha_verify::Error>(())
//! ```

pub mod arithmetic;
pub mod batch;
pub mod code;
pub mod command;
pub mod compose;
pub mod countdown;
mod error;
pub mod eval;
pub mod expr;
pub mod extract;
pub mod format;
pub mod http;
pub mod jsonl;
pub mod language;
pub mod latex;
pub mod markers;
pub mod math;
pub mod rational;

pub use arithmetic::arithmetic_reward;
pub use batch::{BatchReward, Judgement, RewardInput};
pub use command::CommandReward;
pub use compose::{Reference, Reward, RewardSpec, Scored};
pub use countdown::countdown_reward;
pub use error::Error;
pub use extract::{
    extract, reference_answer, ExtractConfig, ExtractMode, Extracted, MultipleAnswers, Pick, Source,
};
pub use format::{format_reward, split_blocks, Blocks, ThinkRule};
pub use http::HttpReward;
pub use jsonl::{score_rows, Summary, Task, TaskOptions};
pub use language::{language_reward, Script};
pub use math::{equivalent, equivalent_with, DEFAULT_REL_TOL};
pub use rational::Ratio;

/// Whether the answer extracted from `completion` is equivalent to the reference answer `gold`
/// (with the default [`ExtractConfig`]); `None` when `gold` is empty.
pub fn math_correct(completion: &str, gold: &str) -> Option<bool> {
    let spec = RewardSpec::Math {
        weight: 1.0,
        extract: ExtractConfig::default(),
        rel_tol: math::DEFAULT_REL_TOL,
    };
    spec.score(completion, &Reference::answer(gold))
        .map(|v| v >= 1.0)
}
