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

/// `dtype = "bf16"`: bf16 activations through the generic ops, f32 master weights and AdamW
/// state; every step still trains.
#[test]
fn smoke_grpo_run_trains_in_bf16() {
    assert_trains(&smoke("smoke-bf16", 2, &["dtype=bf16"]), 2);
}

/// `--device` and `--dtype` override the config's keys, as `--set` would, and show in the
/// resolved config.
#[test]
fn device_and_dtype_flags_override_the_config() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/smoke.toml");
    let out = aha(&[
        "train",
        config.to_str().unwrap(),
        "--device",
        "cpu",
        "--dtype",
        "bf16",
        "--show-config",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("dtype = \"bf16\""), "{text}");
    assert!(text.contains("device = \"cpu\""), "{text}");
    let bad = aha(&["train", config.to_str().unwrap(), "--dtype", "fp8"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("fp8") && err.contains("bf16"), "{err}");
}

/// Asking a CPU-only build for a GPU fails before any work, saying how to build the CUDA binary
/// — for the config key and for the flag of a command that loads a checkpoint.
#[test]
fn cuda_in_a_cpu_build_says_how_to_build_it() {
    if cfg!(feature = "cuda") {
        return;
    }
    let dir = scratch("no-cuda");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/smoke.toml");
    let run_dir = dir.join("run");
    let train = aha(&[
        "train",
        config.to_str().unwrap(),
        "--run-dir",
        run_dir.to_str().unwrap(),
        "--device",
        "cuda:1",
    ]);
    let model = dir.join("model");
    let init = aha(&["init", "--out", model.to_str().unwrap(), "--preset", "tiny"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let input = dir.join("p.jsonl");
    std::fs::write(&input, "{\"prompt\": \"1+1=\"}\n").unwrap();
    let sample = aha(&[
        "sample",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--device",
        "cuda",
    ]);
    for (what, out) in [("train", train), ("sample", sample)] {
        assert!(!out.status.success(), "{what} ran without a GPU build");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("scripts/build-cuda.sh"), "{what}: {err}");
    }
    assert!(
        !run_dir.join("checkpoints").exists(),
        "train wrote checkpoints before failing"
    );
}
