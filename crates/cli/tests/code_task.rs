//! `--task code` through the binary: `aha reward` runs programs in the sandbox against each
//! row's `tests` and reports throughput; `aha eval` samples a model and judges the same way; a
//! row without tests is an error naming file, line (or row) and field. Needs root, bwrap and
//! setpriv, like the code reward.

mod common;

use std::process::Command;

fn aha_reward(input: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_aha"))
        .args(["reward", "--task", "code", "--input", input])
        .output()
        .expect("run aha")
}

fn write(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("aha-reward-code-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write input");
    p.display().to_string()
}

fn line(program: &str, tests: serde_json::Value) -> String {
    let completion = format!("<think>sum</think>\n```python\n{program}\n```");
    serde_json::json!({"prompt": "Add two numbers.", "completion": completion, "tests": tests})
        .to_string()
}

#[test]
fn code_task_runs_the_tests() {
    let tests = serde_json::json!([
        {"input": "1 2\n", "output": "3\n"},
        {"input": "5 5\n", "output": "10"}
    ]);
    let add = "a, b = map(int, input().split())\nprint(a + b)";
    let text = [
        line(add, tests.clone()),
        line("print(3)", tests.clone()),
        line("import os\nos.kill(os.getppid(), 9)", tests),
    ]
    .join("\n");
    let out = aha_reward(&write("c.jsonl", &text));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let correct: Vec<&serde_json::Value> = lines.iter().map(|l| &l["correct"]).collect();
    assert_eq!(correct, [true, false, false]);
    assert_eq!(lines[0]["reward"], 1.0);
    assert_eq!(lines[1]["components"]["code"], 0.0);
    assert!(stderr.contains("executions/s"), "{stderr}");
}

#[test]
fn code_rows_without_tests_are_an_error() {
    let good = line(
        "print(1)",
        serde_json::json!([{"input": "", "output": "1"}]),
    );
    let path = write(
        "missing.jsonl",
        &format!("{good}\n{{\"completion\": \"x\"}}\n"),
    );
    let out = aha_reward(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("{path}:2: missing field \"tests\"")),
        "{stderr}"
    );
    let bad = line("print(1)", serde_json::json!([{"input": "", "output": 1}]));
    let path = write("bad.jsonl", &bad);
    let stderr = String::from_utf8_lossy(&aha_reward(&path).stderr).to_string();
    assert!(
        stderr.contains(&format!(
            "{path}:1: \"tests\"[0].output must be a string, got 1"
        )),
        "{stderr}"
    );
}

#[test]
fn eval_code_task_samples_and_judges() {
    let dir = common::scratch("eval-code");
    let model = common::fixture("qwen2_tied_f32");
    let tests = serde_json::json!([{"input": "1 2", "output": "3"}]);
    let row = serde_json::json!({"prompt": "Add two numbers.", "tests": tests}).to_string();
    let input = dir.join("problems.jsonl");
    std::fs::write(&input, format!("{row}\n{row}\n")).unwrap();
    let args = |input: &std::path::Path| {
        common::aha(&[
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--task",
            "code",
            "--input",
            input.to_str().unwrap(),
            "--k",
            "2",
            "--max-new-tokens",
            "8",
            "--template",
            "raw",
        ])
    };
    let out = args(&input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // A random tiny model writes no program: every sample is judged, and wrong.
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["pass_at_1"], 0.0, "{summary}");
    let answer_only = dir.join("answer_only.jsonl");
    std::fs::write(
        &answer_only,
        format!("{row}\n{{\"prompt\": \"x\", \"answer\": \"1\"}}\n"),
    )
    .unwrap();
    let out = args(&answer_only);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("answer_only.jsonl:2") && stderr.contains("missing field \"tests\""),
        "{stderr}"
    );
}
