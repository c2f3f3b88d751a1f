//! `aha rejection-sample` through the built binary, on a model that has learned something:
//! `aha sft` teaches the demo's tiny model 1-digit sums, rejection sampling keeps exactly the
//! completions an independent check (the same completions from `aha sample`, judged by
//! `aha_verify` directly) calls correct, and `aha sft` trains on the file it wrote. Also Parquet
//! input and an error that names the file and column before any compute.

mod common;

use std::path::Path;

use common::{aha, jsonl, ok, write_lines};

use aha_verify::{arithmetic_reward, ThinkRule};
use serde_json::{json, Value};

/// SFT config text for `aha sft`.
fn sft_config(data: &Path, model: &str, steps: usize) -> String {
    format!(
        "name = \"t\"\nsteps = {steps}\n[data]\npath = {data:?}\n[model]\n{model}\n[sft]\n\
         batch_size = 20\nmicro_batch_size = 20\n[optim]\nlr = 3e-3\n[output]\n\
         checkpoint_every = {steps}\n"
    )
}

/// Completions kept per prompt.
const CAP: usize = 1;

#[test]
fn keeps_exactly_the_verified_completions_and_aha_sft_reads_them() {
    let dir = common::scratch("rejection");
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // A cold-start model: 150 SFT steps on 20 sums a+b with a < 5, b < 4, each answered in two
    // spellings the verifier accepts ("<answer>7</answer>", "<answer> 7</answer>").
    let pairs: Vec<(u32, u32)> = (0..8).flat_map(|a| (0..4).map(move |b| (a, b))).collect();
    let cold = dir.join("cold.jsonl");
    write_lines(
        &cold,
        pairs
            .iter()
            .filter(|(a, _)| *a < 5)
            .flat_map(|(a, b)| ["", " "].map(|sp| (a, b, sp)))
            .map(|(a, b, sp)| {
                json!({
                    "prompt": format!("Q:{a}+{b}="),
                    "completion": format!("<answer>{sp}{}</answer>", a + b)
                })
            }),
    );
    let cfg = dir.join("cold.toml");
    std::fs::write(&cfg, sft_config(&cold, "init = \"demo_tiny\"", 150)).unwrap();
    ok(&["sft", &s(&cfg), "--run-dir", &s(&dir.join("cold_run"))]);
    let ckpt = s(&dir.join("cold_run/checkpoints/step_000150"));

    // All 32 sums, including 12 never seen; K = 6 samples at temperature 1.
    let problems = dir.join("problems.jsonl");
    write_lines(
        &problems,
        pairs
            .iter()
            .map(|(a, b)| json!({"prompt": format!("{a}+{b}"), "answer": a + b})),
    );
    let sampling = [
        "--temperature",
        "1",
        "--top-p",
        "1",
        "--max-new-tokens",
        "12",
        "--seed",
        "5",
    ];
    let out = dir.join("rs.jsonl");
    let cap = CAP.to_string();
    let mut args = vec![
        "rejection-sample",
        "--model",
        &ckpt,
        "--task",
        "arithmetic",
        "--k",
        "6",
        "--keep-per-prompt",
        &cap,
        "--template",
        "Q:{prompt}=",
        "--batch-size",
        "5",
    ];
    let (inp, outp) = (s(&problems), s(&out));
    args.extend(["--input", &inp, "--output", &outp]);
    args.extend(sampling);
    let summary: Value = serde_json::from_str(&ok(&args)).unwrap();
    let kept = jsonl(&out);

    // The same completions from `aha sample` (same seed, prompt and sample indices), judged here.
    let prompts = dir.join("prompts.jsonl");
    write_lines(
        &prompts,
        pairs
            .iter()
            .map(|(a, b)| json!({"prompt": format!("Q:{a}+{b}=")})),
    );
    let sampled = dir.join("sampled.jsonl");
    let mut args = vec![
        "sample",
        "--model",
        &ckpt,
        "--n",
        "6",
        "--batch-prompts",
        "8",
    ];
    let (inp, outp) = (s(&prompts), s(&sampled));
    args.extend(["--input", &inp, "--output", &outp]);
    args.extend(sampling);
    ok(&args);
    let sampled = jsonl(&sampled);
    assert_eq!(sampled.len(), 32 * 6);
    let mut expected = Vec::new();
    let (mut correct, mut with_kept) = (0, 0);
    for (i, (a, b)) in pairs.iter().enumerate() {
        let mut kept_here: Vec<&str> = Vec::new();
        for line in &sampled[i * 6..(i + 1) * 6] {
            assert_eq!(line["prompt_index"], i);
            let text = line["completion"].as_str().unwrap();
            let right = arithmetic_reward(text, &(a + b).to_string(), ThinkRule::Optional);
            if right != Some(1.0) {
                continue;
            }
            correct += 1;
            if line["finish_reason"] == "stop"
                && !kept_here.contains(&text)
                && kept_here.len() < CAP
            {
                kept_here.push(text);
                expected.push(json!({
                    "prompt": format!("Q:{a}+{b}="), "completion": text, "reward": 1.0
                }));
            }
        }
        with_kept += usize::from(!kept_here.is_empty());
    }
    assert_eq!(kept, expected);
    // The run is informative: it keeps some, rejects wrong ones, repeats and those over the cap.
    assert!(correct > 0 && correct < 32 * 6, "{summary}");
    assert!(summary["dropped_duplicate"].as_u64() > Some(0), "{summary}");
    assert!(
        summary["dropped_over_limit"].as_u64() > Some(0),
        "{summary}"
    );
    assert_eq!(
        (
            &summary["prompts"],
            &summary["generated"],
            &summary["correct"],
            &summary["kept"],
            &summary["prompts_with_kept"]
        ),
        (
            &json!(32),
            &json!(192),
            &json!(correct),
            &json!(expected.len()),
            &json!(with_kept)
        ),
        "{summary}"
    );

    // The next SFT round reads the file as it is.
    let cfg = dir.join("next.toml");
    std::fs::write(&cfg, sft_config(&out, &format!("path = {ckpt:?}"), 2)).unwrap();
    let stdout = ok(&["sft", &s(&cfg), "--run-dir", &s(&dir.join("next_run"))]);
    // Piped stdout gets a line per step, then the summary.
    assert!(
        stdout.lines().last().unwrap_or("").starts_with("2 steps"),
        "{stdout}"
    );

    // Parquet input (GSM8K layout): nothing here is correct, so nothing is kept.
    let gsm8k =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../train/tests/fixtures/parquet/gsm8k.parquet");
    let out2 = dir.join("gsm8k_rs.jsonl");
    let mut args = vec![
        "rejection-sample",
        "--model",
        &ckpt,
        "--task",
        "math",
        "--k",
        "2",
        "--prompt-field",
        "question",
        "--max-new-tokens",
        "4",
    ];
    let (inp, outp) = (s(&gsm8k), s(&out2));
    args.extend(["--input", &inp, "--output", &outp]);
    let summary: Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(
        (&summary["prompts"], &summary["generated"], &summary["kept"]),
        (&json!(5), &json!(10), &json!(0))
    );
    assert_eq!(std::fs::read_to_string(&out2).unwrap(), "");

    // A wrong column name fails before any compute, naming the file and the column.
    args[8] = "problem";
    let fail = aha(&args);
    let err = String::from_utf8_lossy(&fail.stderr);
    assert!(!fail.status.success());
    assert!(
        err.contains("gsm8k.parquet") && err.contains("no column `problem`"),
        "{err}"
    );
}
