//! End-to-end tables of (completion, reference, expected reward) through the public entry
//! points, centred on responses that try to collect a reward they did not earn.

use aha_verify::{Reference, Reward, RewardSpec};
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    reward: Vec<RewardSpec>,
}

fn reward_from_toml(text: &str) -> Reward {
    let cfg: Config = toml::from_str(text).expect("valid reward config");
    Reward::new(cfg.reward).expect("valid terms")
}

#[test]
fn math_accuracy_resists_hacks() {
    let r = reward_from_toml(
        r#"
        [[reward]]
        kind = "math"
        weight = 1.0
        "#,
    );
    let cases: &[(&str, &str, f32)] = &[
        ("<think>1/2</think><answer>\\frac12</answer>", "0.5", 1.0),
        (
            "<think>..</think><answer>The final answer is $\\boxed{0.5}$</answer>",
            "1/2",
            1.0,
        ),
        ("\\boxed{42}", "42", 1.0),
        // several answer blocks: hedging earns nothing
        ("<answer>41</answer><answer>42</answer>", "42", 0.0),
        ("<answer>42</answer><answer>42</answer>", "42", 0.0),
        // one block listing candidates
        ("<answer>41 or 42 or 43</answer>", "42", 0.0),
        ("<answer>41, 42, 43</answer>", "42", 0.0),
        ("<answer>\\{41, 42\\}</answer>", "42", 0.0),
        ("<answer>42 \\pm 1</answer>", "42", 0.0),
        // the right number only in the reasoning; the answer says otherwise
        (
            "<think>maybe \\boxed{42}</think><answer>41</answer>",
            "42",
            0.0,
        ),
        ("<think>42</think><answer>unsure</answer>", "42", 0.0),
        // no answer marker at all: the last-number fallback is off by default
        ("I computed 40, 41 and 42.", "42", 0.0),
        // false equations and self-contradicting chains
        ("<answer>41 = 42</answer>", "42", 0.0),
        ("<answer>x = 41 = 42</answer>", "42", 0.0),
        // approximations of exact values
        ("<answer>0.33</answer>", "\\frac13", 0.0),
        ("<answer>3.14</answer>", "\\pi", 0.0),
        // empty and oversized answers
        ("<answer></answer>", "42", 0.0),
    ];
    for &(completion, gold, want) in cases {
        let got = r.score(completion, &Reference::answer(gold)).reward;
        assert_eq!(got, Some(want), "{completion:?} vs {gold:?}");
    }
    let oversized = format!("<answer>{}42</answer>", "41, ".repeat(400));
    assert_eq!(
        r.score(&oversized, &Reference::answer("42")).reward,
        Some(0.0)
    );
}

#[test]
fn composed_reward_from_toml() {
    let r = reward_from_toml(
        r#"
        [[reward]]
        kind = "math"
        weight = 1.0
        extract = { boxed = "first" }

        [[reward]]
        kind = "format"
        weight = 0.5

        [[reward]]
        kind = "language"
        weight = 0.1
        script = "latin"
        "#,
    );
    assert_eq!(r.names(), ["math", "format", "language"]);
    let s = r.score(
        "<think>half of one</think><answer>\\boxed{0.5} \\boxed{2}</answer>",
        &Reference::answer("1/2"),
    );
    assert_eq!(s.components, vec![Some(1.0), Some(1.0), Some(1.0)]);
    assert_eq!(s.reward, Some(1.6));
    assert!(
        toml::from_str::<Config>("[[reward]]\nkind = \"math\"\nweight = 1\nwieght = 2").is_err()
    );
    assert!(toml::from_str::<Config>("[[reward]]\nkind = \"accuracy\"\nweight = 1").is_err());
}
