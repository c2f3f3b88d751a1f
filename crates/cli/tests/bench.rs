//! `aha bench --json`: one JSON object per row on stdout with the fields scripts read, on a
//! random model and on a checkpoint given with `--model`, with tiny shapes so it runs in seconds.

mod common;

use common::{fixture, ok, s};

/// `aha bench --json` on `shapes` for one step without warm-up, with a 2 × G 2 × 4-token
/// GRPO step, plus `extra` flags.
fn tiny_bench(shapes: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "bench",
        "--json",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--shapes",
        shapes,
        "--grpo-prompts",
        "2",
        "--grpo-group",
        "2",
        "--grpo-new-tokens",
        "4",
    ];
    args.extend(extra);
    ok(&args)
}

fn rows(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn json_rows_carry_row_seconds_tokens_and_breakdown() {
    let out = tiny_bench("matmul,grpo-step", &[]);
    let rows = rows(&out);
    let names: Vec<&str> = rows.iter().map(|r| r["row"].as_str().unwrap()).collect();
    assert_eq!(names, ["matmul", "grpo-step"], "{out}");
    let grpo = &rows[1];
    assert!(grpo["seconds"].as_f64().unwrap() > 0.0, "{grpo}");
    assert!(grpo["tokens_per_s"].as_f64().unwrap() > 0.0, "{grpo}");
    for key in ["rollout_ms", "update_ms", "cpu_s"] {
        assert!(grpo[key].is_number(), "{key} missing: {grpo}");
    }
    if cfg!(target_os = "linux") {
        assert!(grpo["peak_rss_mib"].as_f64().unwrap() > 1.0, "{grpo}");
    }
    assert!(rows[0]["gflop_per_s"].as_f64().unwrap() > 0.0);
    // No ratio against a figure typed into the source.
    assert!(!out.contains("TRL"), "{out}");
}

#[test]
fn model_flag_runs_the_grpo_step_on_a_checkpoint() {
    let model = fixture("qwen2_tied_f32");
    let out = tiny_bench("grpo-step", &["--model", s(&model)]);
    let rows = rows(&out);
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(rows[0]["row"], "grpo-step");
    // The checkpoint's shape, not the reference preset's (d 256, vocab 1024).
    assert!(
        rows[0]["shape"].as_str().unwrap().starts_with("d32 "),
        "{out}"
    );
    assert!(rows[0]["tokens_per_s"].as_f64().unwrap() > 0.0, "{out}");
}
