//! `aha demo --quick` end to end through the binary: it completes, writes its report (curves
//! drawn in), summary and an HF checkpoint, and GRPO improves held-out accuracy and lengthens responses —
//! for two seeds, one of them the seed whose base model once could not think (seed 1). And a
//! base model that never learns the written method is reported as such, first thing.
//! No exact numbers: timing-free, but each seed must show the effect.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn demo(name: &str, args: &[&str]) -> (PathBuf, Output) {
    let out = std::env::temp_dir().join(format!("aha-demo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let output = Command::new(env!("CARGO_BIN_EXE_aha"))
        .arg("demo")
        .args(args)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("running aha demo");
    assert!(
        output.status.success(),
        "aha demo {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    (out, output)
}

fn quick_demo_shows_the_effect(seed: &str) {
    let (out, output) = demo(&format!("seed{seed}"), &["--quick", "--seed", seed]);
    let s = read_json(&out.join("summary.json"));
    let num = |k: &str| s[k].as_f64().unwrap_or_else(|| panic!("summary.json: {k}"));
    assert_eq!(s["verdict"], "aha", "seed {seed}: {s}");
    assert!(s["base_check"]["passed"].as_bool().unwrap(), "{s}");
    assert!(
        num("final_accuracy") > num("base_accuracy") + 0.2,
        "seed {seed}: accuracy {} -> {}",
        num("base_accuracy"),
        num("final_accuracy")
    );
    assert!(num("final_mean_length") > num("base_mean_length"));
    assert!(num("seconds") > 0.0 && num("flops") > 0.0 && num("dollars") > 0.0);
    assert!(s["steps"].as_u64().unwrap() > 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("when made to think"), "{stdout}");
    assert!(!stdout.contains("NEVER LEARNED"), "{stdout}");

    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    // The four curves are drawn into the page itself: it needs no file beside it.
    assert_eq!(html.matches("<svg ").count(), 4, "curves in report.html");
    assert!(html.contains("<polyline points=") && html.contains("147K H800"));
    assert!(!html.contains("never learned"));

    let ckpt = Path::new(s["final_checkpoint"].as_str().unwrap());
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(ckpt.join(f).is_file(), "checkpoint lacks {f}");
    }
    let cfg = read_json(&ckpt.join("config.json"));
    assert_eq!(cfg["model_type"], "qwen2");
    // The checkpoint loads back into aha.
    let model_cfg = aha_model::ModelConfig::from_hf_file(&ckpt.join("config.json")).unwrap();
    assert_eq!(
        model_cfg.hidden_size,
        cfg["hidden_size"].as_u64().unwrap() as usize
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn quick_demo_improves_accuracy_and_writes_everything() {
    quick_demo_shows_the_effect("0");
}

#[test]
fn quick_demo_works_for_the_seed_whose_base_model_once_could_not_think() {
    quick_demo_shows_the_effect("1");
}

#[test]
fn a_base_model_that_cannot_think_is_reported_as_such() {
    // Twenty pretraining steps and a cap there: the column work cannot appear.
    let (out, output) = demo(
        "never",
        &[
            "--quick",
            "--pretrain-steps",
            "20",
            "--max-pretrain-steps",
            "20",
            "--steps",
            "2",
            "--eval-problems",
            "8",
            "--k",
            "1",
        ],
    );
    let s = read_json(&out.join("summary.json"));
    assert_eq!(s["verdict"], "base_never_learned", "{s}");
    assert_eq!(s["base_check"]["passed"], false, "{s}");
    assert!(
        s["base_check"]["think_accuracy"].as_f64().unwrap() < 0.6,
        "{s}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let table = &stdout[stdout
        .find("THE BASE MODEL")
        .expect("the verdict is printed")..];
    assert!(
        table.starts_with("THE BASE MODEL NEVER LEARNED THE WRITTEN METHOD: RL CANNOT CREATE IT"),
        "{stdout}"
    );
    // Said before any number.
    assert!(!stdout[..stdout.find("THE BASE MODEL").unwrap()].contains("accuracy"));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("the base model never learned the written method: RL cannot create it"),
        "{html}"
    );
    std::fs::remove_dir_all(&out).unwrap();
}
