//! `aha logprobs` and `aha init` through the built binary: results against the transformers
//! references of aha-model's fixtures, input order, errors that name file and line,
//! deterministic init.

mod common;

use common::{aha, fixture, scratch};

/// `aha logprobs --model MODEL --input INPUT`, output on stdout.
fn logprobs(model: &str, input: &str) -> std::process::Output {
    aha(&["logprobs", "--model", model, "--input", input])
}

#[derive(serde::Deserialize)]
struct Line {
    ids: Vec<u32>,
    logprobs: Vec<f32>,
}

#[test]
fn scores_match_transformers_in_input_order() {
    let name = "llama_bf16_sharded";
    let dir = scratch("logprobs-order");
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(name).join("reference.json")).unwrap(),
    )
    .unwrap();
    let seqs = r["sequences"].as_array().unwrap();
    // Longest first, then shorter: batching sorts by length, the output must not.
    let mut input = String::new();
    for s in seqs.iter().rev() {
        input.push_str(&serde_json::json!({ "ids": s["ids"] }).to_string());
        input.push('\n');
    }
    input.push_str("{\"text\": \"The lazy dog isn't quick. 42 apples!\"}\n");
    let in_path = dir.join("in.jsonl");
    let out_path = dir.join("out.jsonl");
    std::fs::write(&in_path, input).unwrap();
    let out = aha(&[
        "logprobs",
        "--model",
        fixture(name).to_str().unwrap(),
        "--input",
        in_path.to_str().unwrap(),
        "--output",
        out_path.to_str().unwrap(),
        "--batch-size",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Line> = std::fs::read_to_string(&out_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), seqs.len() + 1);
    let expected: Vec<&serde_json::Value> = seqs.iter().rev().chain([&seqs[4]]).collect();
    for (got, want) in lines.iter().zip(expected) {
        let ids: Vec<u32> = serde_json::from_value(want["ids"].clone()).unwrap();
        let lp: Vec<f32> = serde_json::from_value(want["logprobs"].clone()).unwrap();
        assert_eq!(got.ids, ids);
        assert_eq!(got.logprobs.len(), ids.len() - 1);
        let d = got
            .logprobs
            .iter()
            .zip(&lp)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d <= 1e-4, "max |Δ| {d} for a row of {}", ids.len());
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_lines_are_named_by_file_and_line() {
    let dir = scratch("logprobs-bad");
    let model = fixture("qwen2_tied_f32");
    let cases = [
        ("{\"ids\": [1, 2", "invalid JSON"),
        (
            "{\"idz\": [1, 2]}",
            "expected `ids`, `text`, or a prompt with `completion_ids`",
        ),
        ("{\"ids\": [1, -2]}", "field `ids`"),
        (
            "{\"ids\": [1, 320]}",
            "token id 320 is out of range for vocab_size 320",
        ),
        ("{\"ids\": [7]}", "a row needs at least 2 tokens"),
        ("{\"text\": 5}", "field `text` must be a string"),
    ];
    for (i, (bad, expect)) in cases.iter().enumerate() {
        let path = dir.join(format!("bad{i}.jsonl"));
        // The bad line comes after a good one and a blank one: line 3.
        std::fs::write(&path, format!("{{\"ids\": [1, 2, 3]}}\n\n{bad}\n")).unwrap();
        let out = logprobs(model.to_str().unwrap(), path.to_str().unwrap());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad}: should fail");
        assert!(out.stdout.is_empty(), "{bad}: wrote output before failing");
        let at = format!("{}:3", path.display());
        assert!(err.contains(&at), "{bad}: {err}");
        assert!(err.contains(expect), "{bad}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // Too long for max_position_embeddings (128).
    let path = dir.join("long.jsonl");
    let ids: Vec<u32> = (0..129).map(|i| i % 300).collect();
    std::fs::write(&path, serde_json::json!({ "ids": ids }).to_string()).unwrap();
    let out = logprobs(model.to_str().unwrap(), path.to_str().unwrap());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":1:") && err.contains("max_position_embeddings (128)"),
        "{err}"
    );
    // A missing model directory names it.
    let out = logprobs("/nonexistent/ckpt", path.to_str().unwrap());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ckpt"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn init_is_deterministic_and_its_checkpoint_scores() {
    let dir = scratch("logprobs-init");
    let (a, b) = (dir.join("a"), dir.join("b"));
    for out in [&a, &b] {
        let o = aha(&[
            "init",
            "--out",
            out.to_str().unwrap(),
            "--preset",
            "tiny",
            "--arch",
            "llama",
            "--hidden-size",
            "48",
            "--heads",
            "6",
            "--kv-heads",
            "2",
            "--seed",
            "5",
            "--dtype",
            "bf16",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs between two runs with the same seed"
        );
    }
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "LlamaForCausalLM");
    assert_eq!(cfg["hidden_size"], 48);
    assert_eq!(cfg["num_key_value_heads"], 2);
    assert_eq!(cfg["torch_dtype"], "bfloat16");
    let input = dir.join("in.jsonl");
    std::fs::write(
        &input,
        "{\"text\": \"<|im_start|>user\\nQ:1+2=<|im_end|>\\n\"}\n",
    )
    .unwrap();
    let o = logprobs(a.to_str().unwrap(), input.to_str().unwrap());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let line: Line = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(line.ids[0], 1, "<|im_start|> is special token 1");
    // Random HF-style weights: every distribution is close to uniform over 320 tokens.
    for lp in line.logprobs {
        assert!((lp + (320f32).ln()).abs() < 0.5, "{lp}");
    }
    let bad = aha(&["init", "--out", a.to_str().unwrap(), "--heads", "5"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not a multiple of the 5 attention heads")
    );
    let _ = std::fs::remove_dir_all(dir);
}
