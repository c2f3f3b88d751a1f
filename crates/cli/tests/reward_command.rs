//! A user's reward program through the binary: `aha reward --command` on a JSONL file, a smoke
//! GRPO run whose reward is a `kind = "command"` program, and a program that crashes mid-run
//! (aha exits non-zero with the program's stderr; no half-written checkpoint is left).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{aha, scratch};
use serde_json::Value;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn aha_reward_runs_a_command_on_a_jsonl_file() {
    let dir = scratch("reward-command");
    let input = dir.join("c.jsonl");
    std::fs::write(
        &input,
        concat!(
            r#"{"prompt": "2+2", "completion": "<think>t</think><answer>4</answer>", "answer": "4"}"#,
            "\n",
            r#"{"prompt": "2+3", "completion": "<answer>6</answer>", "answer": 5}"#,
            "\n\n",
            r#"{"prompt": "poem", "completion": "<answer>roses</answer>"}"#,
            "\n"
        ),
    )
    .unwrap();
    let program = repo_file("configs/rewards/exact_answer.py");
    let command = format!("python3 '{}'", program.display());
    let input = input.display().to_string();
    let out = aha(&["reward", "--command", &command, "--input", &input]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = json_lines(&String::from_utf8(out.stdout).unwrap());
    let rewards: Vec<&Value> = lines.iter().map(|l| &l["reward"]).collect();
    assert_eq!(
        rewards,
        [&Value::from(1.0), &Value::from(0.0), &Value::Null]
    );
    assert_eq!(lines[0]["components"], serde_json::json!({"command": 1.0}));
    assert!(
        stderr.contains("scored 3 lines: 2 judged, mean reward 0.5000"),
        "{stderr}"
    );

    // Beside a task: the task's terms first, then the program's.
    let out = aha(&[
        "reward",
        "--task",
        "math",
        "--command",
        &command,
        "--input",
        &input,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        lines[0]["components"],
        serde_json::json!({"math": 1.0, "format": 1.0, "command": 1.0})
    );
    assert_eq!(
        (&lines[0]["reward"], &lines[0]["correct"]),
        (&Value::from(2.0), &Value::Bool(true))
    );

    let out = aha(&["reward", "--command", "'unbalanced", "--input", &input]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("not a command line"),
        "{stderr}"
    );
}

/// `aha train` on configs/smoke.toml (progress off, `--set` each of `sets`) whose one reward
/// term is the Python `program`, written into `dir`, with `options` added to its
/// `[[reward]]` table. Returns the run directory and the process output.
fn train_on_program(dir: &Path, program: &str, options: &str, sets: &[&str]) -> (PathBuf, Output) {
    let path = dir.join("reward.py");
    std::fs::write(&path, program).unwrap();
    let command = Value::String(path.display().to_string());
    let smoke = std::fs::read_to_string(repo_file("configs/smoke.toml")).unwrap();
    let config = dir.join("train.toml");
    std::fs::write(
        &config,
        format!(
            "{smoke}\n[[reward]]\nkind = \"command\"\nweight = 1.0\n\
             command = [\"python3\", {command}]\n{options}"
        ),
    )
    .unwrap();
    let run = dir.join("run");
    let (config, run_dir) = (config.display().to_string(), run.display().to_string());
    let mut args = vec!["train", &config, "--run-dir", &run_dir];
    for s in sets.iter().chain(&["output.progress=false"]) {
        args.extend(["--set", s]);
    }
    let out = aha(&args);
    (run, out)
}

#[test]
fn grpo_trains_on_a_command_reward() {
    let dir = scratch("train-command");
    // Rewards the share of digits in the completion, 1 + that share so every judged completion
    // scores above 0; `null` if the row's answer did not reach the program.
    let program = r#"import json, sys
for line in sys.stdin:
    item = json.loads(line)
    text = item["completion"]
    share = sum(c.isdigit() for c in text) / max(len(text), 1)
    reward = 1.0 + share if "answer" in item and item["prompt"] else None
    print(json.dumps({"id": item["id"], "reward": reward}), flush=True)
"#;
    let (run, out) = train_on_program(&dir, program, "timeout_s = 30\n", &["steps=3"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let metrics = json_lines(&std::fs::read_to_string(run.join("metrics.jsonl")).unwrap());
    assert_eq!(metrics.len(), 3);
    for m in &metrics {
        let mean = m["reward_mean"].as_f64().unwrap();
        // Every completion judged by the program (1 + digit share), none excluded.
        assert!((1.0..=2.0).contains(&mean), "{m}");
        assert_eq!(m["unjudged"], 0, "{m}");
    }
    println!(
        "smoke run with a command reward, reward_mean per step: {:?}",
        metrics
            .iter()
            .map(|m| m["reward_mean"].as_f64().unwrap())
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_crashing_reward_program_stops_training_cleanly() {
    let dir = scratch("train-crash");
    // Judges the first step's 16 completions (B·G = 4·4), then crashes on the second step's.
    let program = r#"import json, sys
for n, line in enumerate(sys.stdin):
    if n == 16:
        print("reward model out of memory", file=sys.stderr, flush=True)
        sys.exit(7)
    print(json.dumps({"id": json.loads(line)["id"], "reward": 0.5}), flush=True)
"#;
    let sets = ["steps=4", "output.checkpoint_every=1"];
    let (run, out) = train_on_program(&dir, program, "", &sets);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("reward command `python3 ")
            && stderr.contains("exited (exit status: 7) after answering 0 of the 16 inputs")
            && stderr.contains("reward model out of memory"),
        "{stderr}"
    );
    // Step 1 finished and was saved; step 2 left nothing behind: no metrics line, no
    // checkpoint, no temporary directory.
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 1);
    let mut entries: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["step_000001"]);
}

#[test]
fn aha_reward_posts_to_a_url() {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/score", listener.local_addr().unwrap());
    // One request: reward 0.5 per item that carries the row's `source` field, null otherwise.
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(&stream);
        let mut length = 0;
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 2 {
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            line.clear();
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let request: Value = serde_json::from_slice(&body).unwrap();
        let rewards: Vec<Value> = (request["items"].as_array().unwrap().iter())
            .map(|i| match i["source"].is_string() {
                true => Value::from(0.5),
                false => Value::Null,
            })
            .collect();
        let reply = serde_json::json!({ "rewards": rewards }).to_string();
        write!(
            &stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
            reply.len()
        )
        .unwrap();
    });
    let dir = scratch("reward-url");
    let input = dir.join("c.jsonl");
    std::fs::write(
        &input,
        "{\"completion\": \"a\", \"source\": \"web\"}\n{\"completion\": \"b\"}\n",
    )
    .unwrap();
    let out = aha(&[
        "reward",
        "--url",
        &url,
        "--input",
        &input.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        (&lines[0]["reward"], &lines[1]["reward"]),
        (&Value::from(0.5), &Value::Null)
    );
}
