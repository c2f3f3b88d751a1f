//! Commands that fit together, through the built binary, on a model made by `aha init` (whose
//! tokenizer makes `<think>`, `</think>`, `<answer>`, `</answer>` special tokens): `aha sft`
//! teaches it two tagged answers, then the verifiers see every format token — `eval` scores
//! them, `sample`'s lines carry the tags and the rows' answers so `aha reward` scores them as they
//! are and `aha sft` trains on them — and a task that does not match the data is an error
//! naming the file, line and field, not a score of 0.

mod common;

use std::path::Path;

use common::{aha, ok, s, scratch};
use serde_json::{json, Value};

fn write_lines(path: &Path, lines: &[Value]) {
    let text: String = lines.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(path, text).unwrap();
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// SFT config text for `aha sft`.
fn sft_config(data: &Path, model: &Path, steps: usize, lr: f64) -> String {
    format!(
        "name = \"t\"\nsteps = {steps}\n[data]\npath = {data:?}\n[model]\npath = {model:?}\n[sft]\n\
         batch_size = 4\nmicro_batch_size = 4\n[optim]\nlr = {lr}\n[output]\n\
         checkpoint_every = {steps}\n"
    )
}

#[test]
fn format_tokens_reach_the_verifiers_and_outputs_chain() {
    let dir = scratch("chains");
    let base = dir.join("base");
    ok(&["init", "--out", s(&base), "--seed", "1"]);

    // Two problems answered in the R1 format; the tags are special tokens of this tokenizer.
    let sums = [(1, 2), (2, 2)];
    let tagged = dir.join("tagged.jsonl");
    let lines: Vec<Value> = sums
        .iter()
        .map(|(a, b)| {
            let c = a + b;
            json!({
                "prompt": format!("Q:{a}+{b}="),
                "completion": format!("<think>{a}+{b}={c}</think><answer>{c}</answer>")
            })
        })
        .collect();
    write_lines(&tagged, &lines);
    let cfg = dir.join("sft.toml");
    std::fs::write(&cfg, sft_config(&tagged, &base, 80, 1e-2)).unwrap();
    ok(&["sft", s(&cfg), "--run-dir", s(&dir.join("run"))]);
    let model = dir.join("run/checkpoints/step_000080");

    let problems = dir.join("problems.jsonl");
    let rows: Vec<Value> = sums
        .iter()
        .map(|(a, b)| json!({"prompt": format!("Q:{a}+{b}="), "answer": a + b, "id": a * 10 + b}))
        .collect();
    write_lines(&problems, &rows);
    let greedy = ["--temperature", "0", "--max-new-tokens", "24"];

    // eval: the tags are scored (skipping special tokens would leave "1+2=33": 0).
    let evaluated = dir.join("eval.jsonl");
    let mut args = vec![
        "eval",
        "--model",
        s(&model),
        "--task",
        "arithmetic",
        "--think",
        "required",
        "--template",
        "raw",
        "--input",
        s(&problems),
        "--output",
        s(&evaluated),
    ];
    args.extend(greedy);
    let summary: Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(summary["pass_at_1"], 1.0, "{summary}");
    assert_eq!(summary["format_rate"], 1.0, "{summary}");

    // eval --output → reward: each problem's completions are scored against its answer.
    let scored = ok(&["reward", "--task", "arithmetic", "--input", s(&evaluated)]);
    let rewards: Vec<Value> = scored
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["reward"].clone())
        .collect();
    assert_eq!(rewards, [json!(1.0), json!(1.0)]);

    // sample → reward: the lines keep the tags and carry the rows' fields.
    let sampled = dir.join("sampled.jsonl");
    let mut args = vec![
        "sample",
        "--model",
        s(&model),
        "--input",
        s(&problems),
        "--output",
        s(&sampled),
    ];
    args.extend(greedy);
    ok(&args);
    let out = jsonl(&sampled);
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0]["completion"],
        "<think>1+2=3</think><answer>3</answer>"
    );
    assert_eq!(
        (out[1]["answer"].clone(), out[1]["id"].clone()),
        (json!(4), json!(22))
    );
    assert_eq!(out[1]["prompt"], "Q:2+2=");
    let scored = ok(&["reward", "--task", "arithmetic", "--input", s(&sampled)]);
    let rewards: Vec<Value> = scored
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["reward"].clone())
        .collect();
    assert_eq!(rewards, [json!(1.0), json!(1.0)]);

    // sample → logprobs: prompt + completion ids, scored as the sampler scored them.
    let lps = ok(&["logprobs", "--model", s(&model), "--input", s(&sampled)]);
    for (line, sample) in lps.lines().zip(&out) {
        let v: Value = serde_json::from_str(line).unwrap();
        let p = v["prompt_tokens"].as_u64().unwrap() as usize;
        let ids = v["ids"].as_array().unwrap();
        assert_eq!(ids[p..], sample["completion_ids"].as_array().unwrap()[..]);
        let mine = &v["logprobs"].as_array().unwrap()[p - 1..];
        let theirs = sample["logprobs"].as_array().unwrap();
        assert_eq!(mine.len(), theirs.len());
        for (a, b) in mine.iter().zip(theirs) {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
    }

    // sample → sft: the sample lines are SFT data as they are.
    let cfg2 = dir.join("sft2.toml");
    std::fs::write(&cfg2, sft_config(&sampled, &model, 1, 1e-4)).unwrap();
    ok(&["sft", s(&cfg2), "--run-dir", s(&dir.join("run2"))]);

    // A task that does not match the data: an error naming file, line and field, before compute.
    let out = aha(&[
        "eval",
        "--model",
        s(&model),
        "--task",
        "countdown",
        "--input",
        s(&problems),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("problems.jsonl:1") && err.contains("`numbers`") && err.contains("`target`"),
        "{err}"
    );
}

#[test]
fn train_refuses_a_task_that_does_not_match_its_rows() {
    let dir = scratch("chains-train");
    let data = dir.join("countdown.jsonl");
    write_lines(
        &data,
        &[
            json!({"numbers": [3, 25, 50], "target": 75}),
            json!({"numbers": [1, 2], "target": 3}),
        ],
    );
    let cfg = dir.join("train.toml");
    std::fs::write(
        &cfg,
        format!(
            "name = \"t\"\nsteps = 1\n[model]\ninit = \"demo_tiny\"\n[data]\nsource = {{ kind = \
             \"jsonl\", path = {data:?}, task = \"math\" }}\n[rollout]\nprompts_per_step = 2\n\
             group_size = 2\nmax_new_tokens = 4\n"
        ),
    )
    .unwrap();
    let out = aha(&["train", s(&cfg), "--run-dir", s(&dir.join("run"))]);
    assert!(
        !out.status.success(),
        "a math task on Countdown rows must not train"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("countdown.jsonl:1") && err.contains("`answer`") && err.contains("countdown"),
        "{err}"
    );
    assert!(
        !dir.join("run/metrics.jsonl").exists()
            || std::fs::read_to_string(dir.join("run/metrics.jsonl"))
                .unwrap()
                .is_empty()
    );
}
