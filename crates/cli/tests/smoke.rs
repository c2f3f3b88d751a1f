//! The smoke GRPO run (configs/smoke.toml) through the binary: every step trains (finite loss,
//! nonzero gradient norm). CI runs it again under `AHA_OPS=generic`, the ops a GPU runs.

mod common;

use std::path::Path;

use common::{aha, scratch};

/// Runs `aha train configs/smoke.toml` for `steps` steps with `extra` overrides and returns the
/// metrics lines.
fn smoke(tag: &str, steps: usize, extra: &[&str]) -> Vec<serde_json::Value> {
    let dir = scratch(tag);
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/smoke.toml");
    let run_dir = dir.join("run");
    let steps = format!("steps={steps}");
    let mut args = vec![
        "train",
        config.to_str().unwrap(),
        "--run-dir",
        run_dir.to_str().unwrap(),
        "--set",
        &steps,
        "--set",
        "output.progress=false",
    ];
    for e in extra {
        args.extend(["--set", e]);
    }
    let out = aha(&args);
    assert!(
        out.status.success(),
        "aha train failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn assert_trains(metrics: &[serde_json::Value], steps: usize) {
    assert_eq!(metrics.len(), steps);
    for m in metrics {
        let loss = m["loss"].as_f64().unwrap();
        let grad_norm = m["grad_norm"].as_f64().unwrap();
        assert!(loss.is_finite(), "loss {loss} in {m}");
        assert!(
            grad_norm.is_finite() && grad_norm > 0.0,
            "grad_norm {grad_norm} in {m}"
        );
    }
}

#[test]
fn smoke_grpo_run_trains() {
    assert_trains(&smoke("smoke-f32", 3, &[]), 3);
}
