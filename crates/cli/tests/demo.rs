//! `aha demo --quick` end to end through the binary: it completes, writes its report, plots,
//! summary and an HF checkpoint, and GRPO improves held-out accuracy and lengthens responses.
//! No exact numbers: timing-free, but the default seed must show the effect.

use std::path::Path;
use std::process::Command;

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn quick_demo_improves_accuracy_and_writes_everything() {
    let out = std::env::temp_dir().join(format!("aha-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(env!("CARGO_BIN_EXE_aha"))
        .args(["demo", "--quick", "--out"])
        .arg(&out)
        .status()
        .expect("running aha demo");
    assert!(status.success(), "aha demo --quick failed: {status}");

    let s = read_json(&out.join("summary.json"));
    let num = |k: &str| s[k].as_f64().unwrap_or_else(|| panic!("summary.json: {k}"));
    assert!(
        num("final_accuracy") > num("base_accuracy") + 0.1,
        "accuracy {} -> {}",
        num("base_accuracy"),
        num("final_accuracy")
    );
    assert!(num("final_mean_length") > num("base_mean_length"));
    assert!(num("seconds") > 0.0 && num("flops") > 0.0 && num("dollars") > 0.0);
    assert!(s["steps"].as_u64().unwrap() > 0);

    for f in [
        "report.html",
        "accuracy.png",
        "reward.png",
        "length.png",
        "kl.png",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("src=\"accuracy.png\"") && html.contains("147K H800"));

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
