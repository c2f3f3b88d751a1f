//! One vocabulary across commands (docs/cli.md), through the built binary: the canonical flags
//! and their old spellings give the same output, and what can be checked without a model (output
//! paths, counts, model sizes) is refused before any model is loaded.

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
