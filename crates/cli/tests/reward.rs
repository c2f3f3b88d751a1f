//! `aha reward` through the binary: scores in input order, null for what cannot be judged, and
//! errors that name the file and line.

use std::process::Command;

use serde_json::json;

fn aha(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_aha"))
        .args(args)
        .output()
        .expect("run aha")
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write input");
    p.display().to_string()
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("aha-reward-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

#[test]
fn math_scores_each_line_in_order() {
    let dir = tempdir("math");
    let input = write(
        &dir,
        "c.jsonl",
        concat!(
            r#"{"completion": "<think>half</think><answer>\\frac{1}{2}</answer>", "answer": "0.5"}"#,
            "\n",
            r#"{"completion": "<answer>3</answer><answer>4</answer>", "answer": "4"}"#,
            "\n",
            r#"{"completion": "no answer at all", "answer": "7"}"#,
            "\n"
        ),
    );
    let out = aha(&["reward", "--task", "math", "--input", &input]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["reward"], 1.0);
    assert_eq!(lines[0]["correct"], true);
    // Two answer blocks is a hack, not a hit.
    assert_eq!(lines[1]["correct"], false);
    assert_eq!(lines[2]["correct"], false);
}

#[test]
fn countdown_uses_numbers_and_target() {
    let dir = tempdir("countdown");
    let input = write(
        &dir,
        "c.jsonl",
        concat!(
            r#"{"completion": "<think>t</think><answer>(25 + 50) / 3</answer>", "numbers": [3, 25, 50], "target": 25}"#,
            "\n",
            r#"{"completion": "<think>t</think><answer>50 / (3 - 3)</answer>", "numbers": [3, 25, 50], "target": 25}"#,
            "\n"
        ),
    );
    let output = dir.join("r.jsonl");
    let out = aha(&[
        "reward",
        "--task",
        "countdown",
        "--input",
        &input,
        "--output",
        &output.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(output).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["correct"], true);
    assert_eq!(lines[1]["correct"], false);
}

#[test]
fn a_line_without_answer_is_null_and_scoring_goes_on() {
    let dir = tempdir("null");
    let input = write(
        &dir,
        "c.jsonl",
        concat!(
            "{\"completion\": \"<answer>1</answer>\", \"answer\": \"1\"}\n",
            "{\"completion\": \"<answer>2</answer>\"}\n",
            "{\"completion\": \"<answer>3</answer>\", \"answer\": 3}\n",
        ),
    );
    let out = aha(&["reward", "--task", "arithmetic", "--input", &input]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rewards: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["reward"].clone())
        .collect();
    assert_eq!(rewards, [json!(1.0), json!(null), json!(1.0)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 lines: 2 judged"));
}

#[test]
fn malformed_line_is_named() {
    let dir = tempdir("bad");
    let input = write(
        &dir,
        "bad.jsonl",
        "{\"completion\": \"<answer>1</answer>\", \"answer\": \"1\"}\n{\"completion\": \n",
    );
    let out = aha(&["reward", "--task", "arithmetic", "--input", &input]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.jsonl:2"),
        "error should name the line: {err}"
    );
}

#[test]
fn unknown_task_is_rejected_by_the_parser() {
    let out = aha(&["reward", "--task", "poetry", "--input", "x.jsonl"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("poetry"));
}

/// `aha reward ARGS --input PATH`'s rewards, in order.
fn rewards(args: &[&str], input: &str) -> Vec<serde_json::Value> {
    let mut all = vec!["reward"];
    all.extend(args);
    all.extend(["--input", input]);
    let out = aha(&all);
    assert!(
        out.status.success(),
        "aha {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["reward"].clone())
        .collect()
}

#[test]
fn verifier_options_are_the_reward_tables() {
    let dir = tempdir("options");
    // No marker: strict extraction finds no answer, lenient reads the last LaTeX expression.
    let latex = write(
        &dir,
        "latex.jsonl",
        "{\"completion\": \"So the result is $\\\\frac{1}{2}$.\", \"answer\": \"0.5\"}\n",
    );
    assert_eq!(rewards(&["--task", "math"], &latex), [json!(0.0)]);
    assert_eq!(
        rewards(&["--task", "math", "--extract", "strict"], &latex),
        [json!(0.0)]
    );
    assert_eq!(
        rewards(&["--task", "math", "--extract", "lenient"], &latex),
        [json!(1.0)]
    );

    // 0.33 is 1/3 correctly rounded, 1% away: only a tolerance of 1% or more accepts it.
    let decimal = write(
        &dir,
        "decimal.jsonl",
        "{\"completion\": \"<think>x</think><answer>0.33</answer>\", \"answer\": \"\\\\frac{1}{3}\"}\n",
    );
    assert_eq!(rewards(&["--task", "math"], &decimal), [json!(0.0)]);
    assert_eq!(
        rewards(&["--task", "math", "--rel-tol", "0.02"], &decimal),
        [json!(1.0)]
    );
    assert_eq!(
        rewards(&["--task", "math", "--rel-tol", "0.001"], &decimal),
        [json!(0.0)]
    );

    // 50 + 25 = 75 leaves 3 unused: wrong unless a subset of the numbers may be used.
    let subset = write(
        &dir,
        "subset.jsonl",
        "{\"completion\": \"<answer>50 + 25</answer>\", \"numbers\": [3, 25, 50], \"target\": 75}\n",
    );
    assert_eq!(rewards(&["--task", "countdown"], &subset), [json!(0.0)]);
    assert_eq!(
        rewards(&["--task", "countdown", "--use-all", "true"], &subset),
        [json!(0.0)]
    );
    assert_eq!(
        rewards(&["--task", "countdown", "--use-all", "false"], &subset),
        [json!(1.0)]
    );

    // A prompt that ends with `<think>`: the completion opens inside the think block.
    let prefilled = write(
        &dir,
        "prefilled.jsonl",
        "{\"completion\": \"2+2 is 4</think><answer>4</answer>\"}\n",
    );
    assert_eq!(rewards(&["--task", "format"], &prefilled), [json!(0.0)]);
    assert_eq!(
        rewards(&["--task", "format", "--think", "prefilled"], &prefilled),
        [json!(1.0)]
    );

    let out = aha(&[
        "reward",
        "--task",
        "math",
        "--rel-tol=-1",
        "--input",
        &latex,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rel-tol"));
    let help = String::from_utf8(aha(&["reward", "--help"]).stdout).unwrap();
    for default in [
        "[default: strict]",
        "[default: 0.000001]",
        "[default: true]",
    ] {
        assert!(help.contains(default), "{default} missing from:\n{help}");
    }
    assert!(
        help.contains("[[reward]] extract") && help.contains("same default"),
        "{help}"
    );
}

#[test]
fn parquet_completions_are_read_by_the_shared_reader() {
    // The SFT fixture has `prompt` and `completion` columns: the format verifier judges each row.
    let parquet = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../train/tests/fixtures/parquet/sft.parquet");
    let path = parquet.to_str().unwrap();
    // The completions answer without a think block: the R1 rule refuses them, `optional` not.
    assert_eq!(
        rewards(&["--task", "format"], path),
        vec![json!(0.0), json!(0.0)]
    );
    assert_eq!(
        rewards(&["--task", "format", "--think", "optional"], path),
        vec![json!(1.0), json!(1.0)]
    );
}
