//! Agreement of aha's math verifier with Hugging Face Math-Verify on Math-Verify's own test
//! suite, in both extraction modes.
//!
//! `fixtures/math_verify_suite.jsonl` holds every (gold, prediction, verdict) case of the suite,
//! copied unwrapped by `fixtures/make_math_verify_suite.py` and checked against Math-Verify
//! 0.9.0. Each case is judged as the `[[reward]]` math term judges a completion against its
//! reference answer. The options a test passes map onto aha's: its `precision` (decimal
//! places Math-Verify rounds to) becomes the relative tolerance `10^-precision`, and a test
//! that extracts LaTeX only (`match_types` without `expr`) turns the lenient last-number
//! fallback off. `strict = false` and `allow_set_relation_comp` have no aha counterpart.
//!
//! The floors sit at the measured agreement, so a regression in any rule fails the test; every
//! remaining disagreement is listed, with aha's reason, in
//! `fixtures/math_verify_suite_disagreements.md`.

mod common;

use aha_verify::{ExtractConfig, Reference, RewardSpec};
use common::jsonl_cases;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    test: String,
    gold: String,
    pred: String,
    expected: bool,
    match_types: Vec<String>,
    precision: i32,
}

/// Cases on which aha agrees with Math-Verify, per mode (measured, of 270).
const MIN_STRICT: usize = 138;
const MIN_LENIENT: usize = 250;

fn judge(c: &Case, extract: ExtractConfig) -> bool {
    let spec = RewardSpec::Math {
        weight: 1.0,
        extract,
        rel_tol: 10f64.powi(-c.precision),
    };
    spec.score(&c.pred, &Reference::answer(&c.gold)) == Some(1.0)
}

fn short(s: &str) -> String {
    let tail: Vec<char> = s.chars().rev().take(120).collect();
    let tail: String = tail.into_iter().rev().collect();
    if tail.len() < s.len() {
        format!("…{tail:?}")
    } else {
        format!("{tail:?}")
    }
}

#[test]
fn agrees_with_math_verify_suite() {
    let cases: Vec<Case> = jsonl_cases(include_str!("fixtures/math_verify_suite.jsonl"));
    assert_eq!(cases.len(), 270);
    let mut agree = [0usize; 2];
    for (mode, name) in ["strict", "lenient"].iter().enumerate() {
        println!("{name} mode disagreements:");
        for c in &cases {
            let cfg = if mode == 0 {
                ExtractConfig::strict()
            } else {
                ExtractConfig {
                    last_number: c.match_types.iter().any(|t| t == "expr"),
                    ..ExtractConfig::lenient()
                }
            };
            let aha = judge(c, cfg);
            if aha == c.expected {
                agree[mode] += 1;
            } else {
                println!(
                    "  [{}] Math-Verify {} aha {} | gold {} | pred {}",
                    c.test,
                    c.expected,
                    aha,
                    short(&c.gold),
                    short(&c.pred)
                );
            }
        }
    }
    let pct = |n: usize| 100.0 * n as f64 / cases.len() as f64;
    println!(
        "agreement: strict {}/{} ({:.1}%), lenient {}/{} ({:.1}%)",
        agree[0],
        cases.len(),
        pct(agree[0]),
        agree[1],
        cases.len(),
        pct(agree[1])
    );
    assert!(
        agree[0] >= MIN_STRICT,
        "strict agreement {} < {MIN_STRICT}",
        agree[0]
    );
    assert!(
        agree[1] >= MIN_LENIENT,
        "lenient agreement {} < {MIN_LENIENT}",
        agree[1]
    );
}
