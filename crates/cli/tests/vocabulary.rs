//! One vocabulary across commands (docs/cli.md), through the built binary: the canonical flags
//! and their old spellings give the same output, every command that reads prompts or judges
//! completions takes the shared flags, every prompt reader accepts the same forms (Parquet too)
//! with the same file:line:field errors, what can be checked without a model (output paths,
//! counts, model sizes) is refused before any model is loaded, and the README's bench rows exist.

mod common;

use common::{aha, fixture, ok, s, scratch};

fn fails(args: &[&str]) -> String {
    let out = aha(args);
    assert!(!out.status.success(), "aha {args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn old_spellings_are_hidden_aliases_of_the_canonical_flags() {
    let dir = scratch("vocab-alias");
    let model = fixture("qwen2_tied_f32");
    let input = dir.join("p.jsonl");
    std::fs::write(
        &input,
        "{\"prompt\": \"1+1\", \"answer\": \"2\"}\n{\"prompt\": \"2+2\", \"answer\": \"4\"}\n",
    )
    .unwrap();
    let common = [
        "--model",
        s(&model),
        "--input",
        s(&input),
        "--max-new-tokens",
        "4",
        "--seed",
        "3",
    ];
    let sample = |extra: &[&str]| {
        let mut a = vec!["sample"];
        a.extend(common);
        a.extend(extra);
        ok(&a)
    };
    let canonical = sample(&["--k", "3", "--batch-size", "1"]);
    assert_eq!(canonical.lines().count(), 6);
    assert_eq!(sample(&["--n", "3", "--batch-prompts", "1"]), canonical);

    let eval = |extra: &[&str]| {
        let mut a = vec!["eval", "--task", "arithmetic", "--template", "raw"];
        a.extend(common);
        a.extend(extra);
        ok(&a)
    };
    let canonical = eval(&["--k", "2", "--batch-size", "1"]);
    assert!(canonical.contains("\"k\": 2"), "{canonical}");
    assert_eq!(eval(&["--k", "2", "--prompts-per-batch", "1"]), canonical);

    // Hidden: the help shows the canonical names only.
    let help = ok(&["sample", "--help"]);
    assert!(
        help.contains("--k <K>") && help.contains("--batch-size"),
        "{help}"
    );
    assert!(
        !help.contains("--n ") && !help.contains("--batch-prompts"),
        "{help}"
    );
}

#[test]
fn a_bad_output_path_fails_before_the_model_is_loaded() {
    let dir = scratch("vocab-output");
    let input = dir.join("p.jsonl");
    std::fs::write(
        &input,
        "{\"prompt\": \"1+1\", \"answer\": \"2\", \"completion\": \"2\"}\n",
    )
    .unwrap();
    let out = dir.join("missing/dir/e.jsonl");
    // The model directory does not exist either: the error must be the output's.
    let no_model = dir.join("no_model");
    let (inp, outp, m) = (s(&input), s(&out), s(&no_model));
    for cmd in [
        vec!["eval", "--task", "math", "--model", m],
        vec!["rejection-sample", "--task", "math", "--model", m],
        vec!["sample", "--model", m],
        vec!["logprobs", "--model", m],
        vec!["reward", "--task", "math"],
    ] {
        let mut a = cmd.clone();
        a.extend(["--input", inp, "--output", outp]);
        let err = fails(&a);
        assert!(
            err.contains("missing/dir") && err.contains("does not exist"),
            "{cmd:?}: {err}"
        );
        assert!(
            !err.contains("no_model"),
            "{cmd:?} loaded the model first: {err}"
        );
    }
}

#[test]
fn counts_and_sizes_of_zero_are_refused() {
    let dir = scratch("vocab-zero");
    let err = fails(&["init", "--out", s(&dir.join("m")), "--max-positions", "0"]);
    assert!(
        err.contains("--max-positions") && err.contains("at least 1"),
        "{err}"
    );
    assert!(!dir.join("m").exists());
    for flag in ["--k", "--batch-size"] {
        let err = fails(&["sample", "--model", "m", "--input", "p.jsonl", flag, "0"]);
        assert!(err.contains(flag) && err.contains("at least 1"), "{err}");
    }
}

#[test]
fn every_prompt_reader_names_the_file_line_and_field_of_a_bad_prompt() {
    let dir = scratch("vocab-prompts");
    let model = fixture("qwen2_tied_f32");
    let cases = [
        (
            "{\"prompt\": \"1+1\", \"answer\": 2}\n{\"prompt_ids\": [1, 999999], \"answer\": 2}\n",
            "p.jsonl:2: field `prompt_ids`: token id 999999 is out of range",
        ),
        (
            "{\"prompt\": \"1+1\", \"prompt_ids\": [1], \"answer\": 2}\n",
            "p.jsonl:1: expected exactly one of the fields \"prompt\", \"prompt_ids\" or \"messages\"",
        ),
        (
            "{\"messages\": [{\"role\": \"user\"}], \"answer\": 2}\n",
            "p.jsonl:1: field `messages[0].content`",
        ),
    ];
    let input = dir.join("p.jsonl");
    let kept = dir.join("kept.jsonl");
    for (text, expected) in cases {
        std::fs::write(&input, text).unwrap();
        for cmd in ["eval", "rejection-sample", "sample"] {
            let mut a = vec![cmd, "--model", s(&model), "--input", s(&input)];
            a.extend(["--max-new-tokens", "4"]);
            if cmd != "sample" {
                a.extend(["--task", "arithmetic"]);
            }
            if cmd == "rejection-sample" {
                a.extend(["--output", s(&kept)]);
            }
            let err = fails(&a);
            assert!(err.contains(expected), "{cmd}: {err}");
        }
    }
}

#[test]
fn the_shared_flags_are_on_every_command_that_needs_them() {
    let help = |cmd: &str| ok(&[cmd, "--help"]);
    let prompt_readers = ["sample", "eval", "rejection-sample"];
    for cmd in prompt_readers {
        let h = help(cmd);
        for flag in [
            "--k <K>",
            "--top-k",
            "--top-p",
            "--temperature",
            "--max-new-tokens",
            "--seed",
            "--stop",
            "--template",
            "--prompt-field",
            "--batch-size",
            "--device",
        ] {
            assert!(h.contains(flag), "aha {cmd} lacks {flag}");
        }
    }
    let verifiers = ["eval", "rejection-sample", "reward"];
    for cmd in verifiers {
        let h = help(cmd);
        for flag in ["--task", "--think", "--extract", "--rel-tol", "--use-all"] {
            assert!(h.contains(flag), "aha {cmd} lacks {flag}");
        }
        assert!(h.contains("prefilled"), "aha {cmd}: --think prefilled");
    }
    for cmd in ["eval", "rejection-sample"] {
        let h = help(cmd);
        for flag in ["--answer-field", "--numbers-field", "--target-field"] {
            assert!(h.contains(flag), "aha {cmd} lacks {flag}");
        }
    }
}

#[test]
fn parquet_problems_are_read_by_sample_and_eval_with_a_prompt_field() {
    let model = fixture("qwen2_tied_f32");
    let gsm8k = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../train/tests/fixtures/parquet/gsm8k.parquet");
    let common = [
        "--model",
        s(&model),
        "--input",
        s(&gsm8k),
        "--prompt-field",
        "question",
        "--template",
        "raw",
        "--max-new-tokens",
        "2",
    ];
    let sampled = ok(&[&["sample"], &common[..]].concat());
    assert_eq!(sampled.lines().count(), 5, "{sampled}");
    let first: serde_json::Value = serde_json::from_str(sampled.lines().next().unwrap()).unwrap();
    assert!(
        first["answer"].is_string(),
        "the row's answer is carried: {first}"
    );
    let summary = ok(&[&["eval", "--task", "math"], &common[..]].concat());
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["problems"], 5, "{summary}");
}

#[test]
fn the_readme_names_only_bench_rows_that_exist() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let listed = readme
        .split("(rows: ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("README lists the bench rows as `(rows: …;`");
    let help = ok(&["bench", "--help"]);
    let possible = help
        .split("--shapes")
        .nth(1)
        .and_then(|shapes| shapes.split("[default: ").nth(1))
        .and_then(|rest| rest.split(']').next())
        .expect("bench --help lists its default rows");
    let names = |s: &str| -> Vec<String> {
        let mut v: Vec<String> = s
            .split([',', ' ', '`', '\n'])
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(listed), names(possible));
}
