//! Commands that fit together, through the built binary, on a model made by `aha init` (whose
//! tokenizer makes `<think>`, `</think>`, `<answer>`, `</answer>` special tokens): `aha sft`
//! teaches it two tagged answers, then the verifiers see every format token — `eval` scores
//! them, `sample`'s lines carry the tags and the rows' answers so `aha reward` scores them as they
//! are and `aha sft` trains on them — prompts given as token ids or chat messages are read by
//! `eval` and `rejection-sample` as by `sample`, and what `sample` and `rejection-sample` write for
//! `prompt_ids` rows is SFT data; the verifier options reach `eval` and `rejection-sample`; and a
//! task that does not match the data is an error naming the file, line and field, not a score
//! of 0.

mod common;

use std::path::Path;

use common::{aha, jsonl, ok, s, scratch, write_lines};
use serde_json::{json, Value};

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
    let mut prompt_ids = Vec::new();
    for (line, sample) in lps.lines().zip(&out) {
        let v: Value = serde_json::from_str(line).unwrap();
        let p = v["prompt_tokens"].as_u64().unwrap() as usize;
        let ids = v["ids"].as_array().unwrap();
        prompt_ids.push(json!(ids[..p]));
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

    // The same problems as token ids: eval and rejection-sample read them as sample does, and
    // what sample and rejection-sample write for them is SFT data.
    let ids_problems = dir.join("ids.jsonl");
    let rows: Vec<Value> = (prompt_ids.iter().zip(&sums))
        .map(|(ids, (a, b))| json!({"prompt_ids": ids, "answer": a + b}))
        .collect();
    write_lines(&ids_problems, &rows);
    let judged = ["--task", "arithmetic", "--think", "required"];
    let with = |cmd: &str, input: &Path, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [cmd, "--model", s(&model), "--input", s(input)]
            .iter()
            .chain(&greedy)
            .chain(extra)
            .map(|x| x.to_string())
            .collect();
        if cmd != "sample" {
            a.extend(judged.map(String::from));
        }
        a
    };
    let run = |a: Vec<String>| ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let ids_eval = dir.join("ids_eval.jsonl");
    let summary: Value = serde_json::from_str(&run(with(
        "eval",
        &ids_problems,
        &["--output", s(&ids_eval)],
    )))
    .unwrap();
    assert_eq!(summary["pass_at_1"], 1.0, "{summary}");
    assert_eq!(
        jsonl(&ids_eval)[1]["problem"],
        "Q:2+2=",
        "the prompt the model saw"
    );
    let ids_kept = dir.join("ids_kept.jsonl");
    run(with(
        "rejection-sample",
        &ids_problems,
        &["--output", s(&ids_kept)],
    ));
    let kept = jsonl(&ids_kept);
    assert_eq!(kept.len(), 2);
    assert_eq!(
        (kept[0]["prompt_ids"].clone(), kept[0]["completion"].clone()),
        (
            rows[0]["prompt_ids"].clone(),
            json!("<think>1+2=3</think><answer>3</answer>")
        )
    );
    let ids_sampled = dir.join("ids_sampled.jsonl");
    run(with(
        "sample",
        &ids_problems,
        &["--output", s(&ids_sampled)],
    ));
    let sampled_ids = jsonl(&ids_sampled);
    assert_eq!(sampled_ids[0]["prompt_ids"], rows[0]["prompt_ids"]);
    for (name, data) in [("kept", &ids_kept), ("sampled", &ids_sampled)] {
        let cfg = dir.join(format!("sft_{name}.toml"));
        std::fs::write(&cfg, sft_config(data, &model, 1, 1e-4)).unwrap();
        let out = aha(&["sft", s(&cfg), "--run-dir", s(&dir.join(name))]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A chat prompt is read too (rendered with the checkpoint's ChatML template).
    let chat = dir.join("chat.jsonl");
    write_lines(
        &chat,
        &[json!({"messages": [{"role": "user", "content": "Q:1+2="}], "answer": 3})],
    );
    let summary: Value = serde_json::from_str(&run(with("eval", &chat, &[]))).unwrap();
    assert_eq!(summary["problems"], 1, "{summary}");

    // The verifier options reach eval and rejection-sample: "3" reaches the target 3 from
    // [3, 5] only when a subset of the numbers may be used.
    let countdown = dir.join("countdown.jsonl");
    write_lines(
        &countdown,
        &[json!({"prompt": "Q:1+2=", "numbers": [3, 5], "target": 3})],
    );
    let cd = [
        "--task",
        "countdown",
        "--think",
        "required",
        "--template",
        "raw",
    ];
    let eval_cd = |extra: &[&str]| -> Value {
        let mut a = vec!["eval", "--model", s(&model), "--input", s(&countdown)];
        a.extend(greedy);
        a.extend(cd);
        a.extend(extra);
        serde_json::from_str(&ok(&a)).unwrap()
    };
    assert_eq!(eval_cd(&[])["pass_at_1"], 0.0);
    assert_eq!(eval_cd(&["--use-all", "false"])["pass_at_1"], 1.0);
    let kept_cd = dir.join("kept_cd.jsonl");
    let mut a = vec![
        "rejection-sample",
        "--model",
        s(&model),
        "--input",
        s(&countdown),
    ];
    a.extend(greedy);
    a.extend(cd);
    a.extend(["--use-all", "false", "--output", s(&kept_cd)]);
    let summary: Value = serde_json::from_str(&ok(&a)).unwrap();
    assert_eq!(summary["kept"], 1, "{summary}");

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
