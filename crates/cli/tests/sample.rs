//! `aha sample` through the built binary: greedy output equal to transformers' on aha-model's
//! fixtures, determinism across batch sizes, the three prompt forms, stop strings, and errors that
//! name the file and line before any compute.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{aha, fixture, scratch};

#[derive(Debug, PartialEq, serde::Deserialize)]
struct Line {
    prompt_index: usize,
    sample_index: usize,
    completion_ids: Vec<u32>,
    completion: String,
    logprobs: Vec<f32>,
    finish_reason: String,
}

fn lines(path: &Path) -> Vec<Line> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `aha sample --model MODEL --input DIR/in.jsonl --output DIR/out.jsonl EXTRA…` with `input`
/// (JSONL text) written first and no output left from before. Returns the output file's path
/// and the process output.
fn run_sample(dir: &Path, model: &Path, input: &str, extra: &[&str]) -> (PathBuf, Output) {
    let inp = dir.join("in.jsonl");
    let out = dir.join("out.jsonl");
    let _ = std::fs::remove_file(&out);
    std::fs::write(&inp, input).unwrap();
    let mut args = vec![
        "sample",
        "--model",
        model.to_str().unwrap(),
        "--input",
        inp.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = aha(&args);
    (out, o)
}

/// Run `aha sample` on `input` (JSONL text) with extra args; returns the output lines.
fn sample(dir: &Path, model: &str, input: &str, extra: &[&str]) -> Vec<Line> {
    let (out, o) = run_sample(dir, &fixture(model), input, extra);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    lines(&out)
}

#[test]
fn greedy_matches_transformers_generate() {
    let dir = scratch("sample-greedy");
    let name = "qwen3_qknorm_f32";
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(name).join("reference.json")).unwrap(),
    )
    .unwrap();
    let greedy = r["greedy"].as_array().unwrap();
    let input: String = greedy
        .iter()
        .map(|g| format!("{}\n", serde_json::json!({ "prompt_ids": g["prompt_ids"] })))
        .collect();
    let got = sample(
        &dir,
        name,
        &input,
        &[
            "--temperature",
            "0",
            "--k",
            "2",
            "--max-new-tokens",
            "16",
            "--ignore-eos",
        ],
    );
    assert_eq!(got.len(), 2 * greedy.len());
    for line in &got {
        let want: Vec<u32> =
            serde_json::from_value(greedy[line.prompt_index]["output_ids"].clone()).unwrap();
        assert_eq!(line.completion_ids, want);
        assert_eq!(line.logprobs.len(), 16);
        assert_eq!(line.finish_reason, "length");
    }
}

#[test]
fn batch_size_does_not_change_the_samples() {
    let dir = scratch("sample-batch");
    let input = "{\"prompt\": \"Q:12+34=\"}\n\n{\"prompt_ids\": [5, 6, 7, 8, 9, 10]}\n\
                 {\"messages\": [{\"role\": \"user\", \"content\": \"Q:5+5=\"}]}\n";
    let args = ["--k", "3", "--max-new-tokens", "12", "--seed", "7"];
    let one = sample(
        &dir,
        "qwen2_tied_f32",
        input,
        &[&args[..], &["--batch-size", "1"]].concat(),
    );
    let all = sample(
        &dir,
        "qwen2_tied_f32",
        input,
        &[&args[..], &["--batch-size", "3"]].concat(),
    );
    assert_eq!(one.len(), 9);
    for (a, b) in one.iter().zip(&all) {
        assert_eq!(
            (a.prompt_index, a.sample_index, &a.completion_ids),
            (b.prompt_index, b.sample_index, &b.completion_ids)
        );
        for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
            assert!((x - y).abs() < 1e-5);
        }
    }
    let order: Vec<(usize, usize)> = one
        .iter()
        .map(|l| (l.prompt_index, l.sample_index))
        .collect();
    assert_eq!(order[..4], [(0, 0), (0, 1), (0, 2), (1, 0)]);
    // The checkpoint's EOS (id 2) ends a completion and is its last token.
    for l in &one {
        match l.finish_reason.as_str() {
            "stop" => assert_eq!(l.completion_ids.last(), Some(&2)),
            "length" => assert_eq!(l.completion_ids.len(), 12),
            other => panic!("finish_reason {other}"),
        }
    }
}

#[test]
fn stop_strings_end_completions() {
    let dir = scratch("sample-stop");
    let input = "{\"prompt\": \"The lazy dog\"}\n";
    let free_args = [
        "--k",
        "4",
        "--max-new-tokens",
        "24",
        "--ignore-eos",
        "--seed",
        "3",
    ];
    let free = sample(&dir, "qwen2_tied_f32", input, &free_args);
    // A stop string taken from the middle of the first completion's text.
    let text = &free[0].completion;
    let chars: Vec<char> = text.chars().collect();
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 2].iter().collect();
    let stop_args = [&free_args[..], &["--stop", &stop]].concat();
    let stopped = sample(&dir, "qwen2_tied_f32", input, &stop_args);
    assert_eq!(stopped[0].finish_reason, "stop");
    assert!(stopped[0].completion.contains(&stop));
    for (f, s) in free.iter().zip(&stopped) {
        assert!(f.completion_ids.starts_with(&s.completion_ids));
        if s.finish_reason == "stop" {
            let before = &s.completion_ids[..s.completion_ids.len() - 1];
            assert!(f.completion_ids.len() > before.len());
        }
    }
}

/// Run with a bad input; assert it fails naming `expect` and writes no output.
fn fails(dir: &Path, model: &Path, input: &str, extra: &[&str], expect: &[&str]) {
    let mut args = extra.to_vec();
    if !extra.contains(&"--max-new-tokens") {
        args.extend_from_slice(&["--max-new-tokens", "8"]);
    }
    let (out, o) = run_sample(dir, model, input, &args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "should fail: {input:?} {extra:?}");
    for e in expect {
        assert!(err.contains(e), "stderr lacks {e:?}: {err}");
    }
    assert!(!out.exists(), "output written before validation failed");
}

#[test]
fn bad_input_fails_before_any_compute() {
    let dir = scratch("sample-bad");
    let model = fixture("qwen2_tied_f32");
    let ok = "{\"prompt\": \"hi\"}\n";
    fails(
        &dir,
        &model,
        &format!("{ok}{{\"prompt\": \n"),
        &[],
        &["in.jsonl:2", "invalid JSON"],
    );
    fails(
        &dir,
        &model,
        &format!("{ok}{{\"prompt\": \"\"}}\n"),
        &[],
        &["in.jsonl:2", "empty"],
    );
    fails(
        &dir,
        &model,
        "{\"text\": \"x\"}\n",
        &[],
        &["in.jsonl:1", "found none"],
    );
    fails(
        &dir,
        &model,
        "{\"prompt_ids\": [1, 999999]}\n",
        &[],
        &["in.jsonl:1", "out of range"],
    );
    let long = format!("{{\"prompt_ids\": {:?}}}\n", vec![5u32; 100]);
    fails(
        &dir,
        &model,
        &long,
        &["--max-new-tokens", "29"],
        &["in.jsonl:1", "at most 99"],
    );
    fails(&dir, &model, ok, &["--k", "0"], &["--k"]);
    fails(
        &dir,
        &model,
        ok,
        &["--max-new-tokens", "0"],
        &["max_new_tokens"],
    );
    fails(&dir, &model, ok, &["--top-p", "0"], &["top_p"]);
    // A chat template that uses a variable aha does not provide.
    let ckpt = dir.join("ckpt");
    std::fs::create_dir_all(&ckpt).unwrap();
    for entry in std::fs::read_dir(&model).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, ckpt.join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        ckpt.join("chat_template.jinja"),
        "{{ system_date }}{{ messages[0].content }}",
    )
    .unwrap();
    let chat = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n";
    fails(
        &dir,
        &ckpt,
        &format!("{ok}{chat}"),
        &[],
        &["in.jsonl:2", "chat_template"],
    );
}
