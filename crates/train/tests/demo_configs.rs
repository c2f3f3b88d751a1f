//! The ready configs in `configs/` parse and validate under the trainer's schema (they name
//! model and data files that are not shipped, so nothing is opened).

use std::path::Path;

use aha_train::config::{RunConfig, TrainConfig};

fn load(name: &str) -> TrainConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(name);
    TrainConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn r1_zero_configs_use_rule_rewards_only() {
    for name in [
        "r1_zero_qwen2.5_0.5b_gsm8k.toml",
        "r1_zero_qwen2.5_1.5b_math.toml",
    ] {
        let cfg = load(name);
        let kinds: Vec<&str> = cfg.reward.iter().map(|r| r.kind()).collect();
        assert_eq!(kinds, ["math", "format"], "{name}");
        assert!(cfg.model.path.is_some(), "{name}");
        // The r1_zero preset sits underneath: its KL coefficient is in force.
        assert!(cfg.grpo.beta > 0.0, "{name}");
    }
}

#[test]
fn countdown_config_generates_its_problems() {
    let cfg = load("countdown_qwen2.5_0.5b.toml");
    assert!(cfg.reward.iter().any(|r| r.kind() == "countdown"));
    let (_, skipped) = cfg.data.open().unwrap();
    assert_eq!(skipped, 0);
}
