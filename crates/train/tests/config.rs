//! The run config: unknown keys and wrong types are errors naming the key, `--set` is typed by
//! the field it replaces, presets sit under the file's own values, and the resolved config
//! round-trips.

use aha_train::algo::{AdvantageNorm, LossAggregation, Overlong};
use aha_train::config::{GroupFilter, RunConfig, TrainConfig};

const BASE: &str = r#"
name = "t"
[model]
init = "demo_tiny"
[data]
source = { kind = "addition" }
"#;

fn load(text: &str, sets: &[&str]) -> Result<TrainConfig, String> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    TrainConfig::from_toml_str(text, &sets).map_err(|e| e.to_string())
}

#[test]
fn defaults_and_round_trip() {
    let c = load(BASE, &[]).unwrap();
    assert_eq!(c.rollout.group_size, 8);
    assert_eq!(c.grpo.advantage, AdvantageNorm::MeanStd);
    assert_eq!(c.grpo.beta, 0.0);
    let text = c.to_toml().unwrap();
    assert!(text.contains("micro_batch_size = 16"), "{text}");
    assert_eq!(load(&text, &[]).unwrap(), c);
}

#[test]
fn unknown_keys_and_wrong_types_are_named() {
    let e = load(&format!("{BASE}\n[grpo]\nbetta = 0.1\n"), &[]).unwrap_err();
    assert!(e.contains("betta") && e.contains("line"), "{e}");
    let e = load(&format!("{BASE}\n[rollout]\ngroup_size = \"eight\"\n"), &[]).unwrap_err();
    assert!(e.contains("group_size") || e.contains("integer"), "{e}");
    let e = load(BASE, &["steps=ten"]).unwrap_err();
    assert!(e.contains("`steps`") && e.contains("integer"), "{e}");
    let e = load(BASE, &["grpo.nope=1"]).unwrap_err();
    assert!(e.contains("nope"), "{e}");
    let e = load(BASE, &["rollout.group_size=1"]).unwrap_err();
    assert!(e.contains("rollout.group_size"), "{e}");
    let e = load(
        "name = \"t\"\n[model]\n[data]\nsource = { kind = \"addition\" }\n",
        &[],
    )
    .unwrap_err();
    assert!(e.contains("model"), "{e}");
    let e = load(&BASE.replace("demo_tiny", "huge"), &[]).unwrap_err();
    assert!(e.contains("huge") && e.contains("line 4"), "{e}");
    assert!(e.contains("demo_tiny, tiny, reference, small"), "{e}");
}

#[test]
fn overrides_are_typed_by_their_field() {
    let c = load(
        BASE,
        &[
            "steps=7",
            "name=123",
            "optim.lr=3e-4",
            "grpo.advantage=mean_only",
            "grpo.overlong={ kind = \"mask\" }",
            "rollout.stop_strings=[\"</answer>\"]",
        ],
    )
    .unwrap();
    assert_eq!(c.steps, 7);
    assert_eq!(c.name, "123");
    assert_eq!(c.optim.lr, 3e-4);
    assert_eq!(c.grpo.advantage, AdvantageNorm::MeanOnly);
    assert_eq!(c.grpo.overlong, Overlong::Mask);
    assert_eq!(c.rollout.stop_strings, ["</answer>"]);
}

#[test]
fn presets_fill_what_the_file_leaves_out() {
    let c = load(
        &format!("preset = \"r1_zero\"\n{BASE}\n[rollout]\ngroup_size = 4\n"),
        &[],
    )
    .unwrap();
    assert_eq!(
        (c.grpo.clip_low, c.grpo.clip_high, c.grpo.beta),
        (10.0, 10.0, 0.001)
    );
    assert_eq!((c.optim.lr, c.grpo.reference_reset_every), (3e-6, 400));
    assert_eq!(c.rollout.group_size, 4, "the file's own value wins");
    let c = load(BASE, &["preset=dapo"]).unwrap();
    assert_eq!(c.grpo.aggregation, LossAggregation::TokenMean);
    assert_eq!(c.grpo.filter, GroupFilter::DropUniform);
    let c = load(BASE, &["preset=dr_grpo"]).unwrap();
    assert_eq!(c.grpo.aggregation, LossAggregation::ConstantNormalizer);
    assert!(load(BASE, &["preset=r2"]).unwrap_err().contains("r2"));
}
