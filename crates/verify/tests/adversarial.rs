//! Adversarial inputs: every verifier must return (no panic, no stack overflow, no runaway
//! work) on random strings from a seeded generator and on hand-made pathological cases.
//!
//! Time is not asserted here (a timed assertion flakes on a loaded machine); the work bounds are
//! structural — answers over 1000 bytes refused, parse depth ≤ 64, exact exponents ≤ 127, ≤ 8
//! boxes brace-matched, sets ≤ 64 elements — and `examples/bench_verify.rs` measures the
//! worst-case times of these same inputs.

use aha_verify::{
    arithmetic_reward, countdown_reward, equivalent, equivalent_with, extract, format_reward,
    language_reward, math_correct, reference_answer, ExtractConfig, Reference, RewardSpec, Script,
    ThinkRule,
};

/// SplitMix64: a tiny, seeded, dependency-free generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Fragments that exercise every branch of the lexer, parser and extractor.
const PIECES: &[&str] = &[
    "0",
    "1",
    "7",
    "42",
    "3.5",
    ".",
    ",",
    "{,}",
    "1e5",
    "e",
    "x",
    "y",
    "a_1",
    "_",
    "^",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "\\{",
    "\\}",
    "+",
    "-",
    "*",
    "/",
    "=",
    "<",
    ">=",
    "!",
    "%",
    "\\%",
    "|",
    "\\frac",
    "\\dfrac",
    "\\sqrt",
    "\\sqrt[3]",
    "\\pi",
    "\\infty",
    "\\cup",
    "\\pm",
    "\\cdot",
    "\\times",
    "\\left",
    "\\right",
    "\\text{",
    "\\text{ or }",
    "\\boxed{",
    "\\fbox{",
    "\\binom",
    "\\sin",
    "\\log_",
    "\\ln",
    "^\\circ",
    "\\,",
    "\\!",
    "$",
    "\\$",
    " ",
    "\n",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "final answer is",
    "####",
    "é",
    "中",
    "∞",
    "±",
    "\\",
    "\\begin{pmatrix}",
    "\\\\",
    "&",
    "10^{10^{10}}",
    "999999999999999999999999999999999999999999",
    "\\end{pmatrix}",
    "\\begin{array}{cc}",
    "\\in",
    "\\approx",
    ":",
    "12:00",
    "\\(",
    "\\)",
    "\\[",
    "\\]",
    "$$",
    "_3",
    "_{16}",
    "**",
    "`",
    " is ",
    "0.0833333",
    "11,\\!111",
    "1 000",
];

fn random_string(rng: &mut Rng, pieces: usize) -> String {
    (0..pieces)
        .map(|_| PIECES[rng.below(PIECES.len())])
        .collect()
}

fn all_verifiers(completion: &str, gold: &str) {
    let _ = math_correct(completion, gold);
    let _ = equivalent(gold, completion);
    let _ = extract(completion, &ExtractConfig::lenient());
    let _ = reference_answer(completion);
    let _ = equivalent_with(gold, completion, 1e-2);
    let lenient = RewardSpec::Math {
        weight: 1.0,
        extract: ExtractConfig::lenient(),
        rel_tol: 1e-6,
    };
    let _ = lenient.score(completion, &Reference::answer(gold));
    let _ = format_reward(completion, ThinkRule::Required);
    let _ = arithmetic_reward(completion, gold, ThinkRule::Optional);
    let _ = countdown_reward(
        completion,
        &[1, 2, 3, 4],
        10,
        true,
        &ExtractConfig::default(),
    );
    let _ = language_reward(completion, Script::Latin, ThinkRule::Required);
}

#[test]
fn random_strings_never_panic() {
    let mut rng = Rng(0x5EED);
    for i in 0..20_000 {
        let n = 1 + rng.below(if i % 100 == 0 { 2_000 } else { 40 });
        let completion = random_string(&mut rng, n);
        let m = 1 + rng.below(12);
        let gold = random_string(&mut rng, m);
        all_verifiers(&completion, &gold);
        all_verifiers(&format!("<answer>{completion}</answer>"), &gold);
        all_verifiers(&format!("\\boxed{{{gold}}}"), &completion);
    }
}

#[test]
fn pathological_inputs_return() {
    let mb = 1 << 20;
    let cases: Vec<String> = vec![
        "{".repeat(mb),
        format!("\\boxed{{{}}}", "{".repeat(mb)),
        format!("\\boxed{{{}1{}}}", "{".repeat(400), "}".repeat(400)),
        "\\boxed{1}".repeat(100_000),
        "\\boxed{".repeat(100_000),
        format!("<answer>{}</answer>", "(".repeat(900)),
        format!("<answer>{}</answer>", "-".repeat(900)),
        format!("<answer>{}2</answer>", "2^".repeat(450)),
        format!("<answer>{}</answer>", "1+".repeat(499) + "1"),
        format!("<answer>{}</answer>", "1,".repeat(499) + "1"),
        format!("<answer>{}</answer>", "x".repeat(999)),
        "<answer>10^{10^{10}}</answer>".into(),
        "<answer>10^{10^{10^{10^{10}}}}</answer>".into(),
        "<answer>(10^{100})!</answer>".into(),
        "<answer>\\binom{10^{30}}{10^{29}}</answer>".into(),
        "<answer>1e999999999</answer>".into(),
        "<answer>99999999999999999999999999999999999999999999999</answer>".into(),
        format!(
            "<answer>{}</answer>",
            "\\sqrt{".repeat(300) + &"}".repeat(300)
        ),
        format!(
            "<answer>{}</answer>",
            "\\text{".repeat(300) + &"}".repeat(300)
        ),
        "<answer>".repeat(100_000),
        "<think>".repeat(100_000) + "</think><answer>1</answer>",
        "final answer is ".repeat(50_000),
        format!("{} 7", "1 ".repeat(200_000)),
        "#### ".repeat(100_000),
        "\\".repeat(mb),
        "中".repeat(mb / 3),
        // Lenient reading: unclosed and endless math spans, numbers and phrases.
        "$".repeat(mb),
        "$$".repeat(mb / 2) + "1",
        "\\(".repeat(mb / 2),
        "\\[".repeat(mb / 2),
        "$1$ and ".repeat(100_000),
        "\\(x\\)\n".repeat(100_000),
        "1,".repeat(mb / 2),
        "1 000 ".repeat(100_000),
        "\\frac{1}{2}".repeat(50_000),
        "final answer: it is ".repeat(50_000),
        "\\boxed{1}, ".repeat(100_000),
        format!("<answer>{}</answer>", "\\begin{pmatrix}".repeat(300)),
        format!(
            "<answer>\\begin{{pmatrix}}{}\\end{{pmatrix}}</answer>",
            "1 & ".repeat(240)
        ),
        format!("<answer>{}</answer>", "x = ".repeat(240) + "1"),
        format!("<answer>{}</answer>", "1 < ".repeat(240) + "x"),
        format!("<answer>{}</answer>", "7:".repeat(490) + "1"),
        format!("<answer>{}_{{36}}</answer>", "z".repeat(20)),
    ];
    for c in &cases {
        for gold in [
            "1",
            "10^{10^{10}}",
            "\\{1, 2\\}",
            "x = 3",
            "(0, 1]",
            "x \\ge 2",
            "\\begin{pmatrix}1 & 2\\end{pmatrix}",
            "\\frac{1}{3}",
        ] {
            all_verifiers(c, gold);
        }
    }
    // Self-comparison of a huge-exponent answer is decided by the tree, not by `inf == inf`.
    assert!(equivalent("10^{10^{10}}", "10^{10^{10}}"));
    assert!(!equivalent("10^{10^{10}}", "10^{10^{11}}"));
    let big_set = format!(
        "\\{{{}\\}}",
        (0..200)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(!equivalent(&big_set, &big_set.replace("199", "198")));
}
