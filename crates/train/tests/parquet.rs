//! Parquet datasets written by pyarrow (`tests/fixtures/parquet/make_fixtures.py`): GRPO problems
//! in GSM8K, MATH and Countdown layouts (snappy, zstd, gzip; several row groups), SFT pairs and
//! chat messages, and errors that name the file, the row and the column.

use std::path::{Path, PathBuf};

use aha_train::data::{
    parquet, read_items, DataConfig, DataSource, Dataset, Fields, Item, MissingAnswer, Needs,
    PromptTemplate,
};
use aha_train::init_model::init_policy;
use aha_train::sft_run::read_examples;
use aha_verify::Task;
use candle_core::Device;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parquet")
        .join(name)
}

fn fields(prompt: &str, answer: &str) -> Fields {
    Fields {
        prompt: prompt.into(),
        answer: answer.into(),
        ..Fields::default()
    }
}

#[test]
fn grpo_source_reads_gsm8k_rows_in_order_across_row_groups() {
    let cfg = DataConfig {
        source: DataSource::Parquet {
            path: fixture("gsm8k.parquet"),
            fields: fields("question", "answer"),
            task: Task::Math,
        },
        template: PromptTemplate::R1Zero,
        missing_answer: MissingAnswer::Error,
    };
    let (dataset, skipped) = cfg.open().unwrap();
    assert_eq!(skipped, 0);
    let Dataset::Rows { items, .. } = dataset else {
        panic!("a file source opens as rows")
    };
    // Five rows in row groups of two: every row, in file order.
    assert_eq!(items.len(), 5);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(
            item.problem,
            format!("Tom has {i} apples and buys {} more. How many now?", i + 3)
        );
        assert_eq!(
            item.answer.as_deref(),
            Some(format!("{i} + {} = {}\n#### {}", i + 3, 2 * i + 3, 2 * i + 3).as_str())
        );
    }
    // The GSM8K answer's "#### N" is what the math verifier judges against.
    let r = Task::Math.reward().score(
        "<think>3+6</think><answer>9</answer>",
        &items[3].reference(),
    );
    assert_eq!(r.correct, Some(true));
}

#[test]
fn math_zstd_large_strings_and_countdown_gzip_lists() {
    let (items, _) = read_items(
        &fixture("math.parquet"),
        &fields("problem", "solution"),
        MissingAnswer::Error,
        Needs::AnyReference,
    )
    .unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1].problem, "Solve $x + 2 = 5$.");
    assert_eq!(items[1].answer.as_deref(), Some("$x = \\boxed{3}$"));
    // Every other column reaches the row external rewards see; the prompt column does not.
    let row = &items[1].row;
    assert_eq!(row["solution"], "$x = \\boxed{3}$");
    assert_eq!(
        (&row["level"], &row["type"]),
        (&"Level 2".into(), &"Algebra".into())
    );
    assert_eq!(
        row["extra"], "\u{2}",
        "binary columns holding UTF-8 read as text"
    );
    assert!(!row.contains_key("problem"));

    // TinyZero's Countdown files have only `nums` and `target`: the problem text is built.
    let f = Fields {
        numbers: "nums".into(),
        ..Fields::default()
    };
    let (items, _) = read_items(
        &fixture("countdown.parquet"),
        &f,
        MissingAnswer::Error,
        Needs::AnyReference,
    )
    .unwrap();
    let row: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"nums": [3, 8, 1], "target": 24}"#).unwrap();
    assert_eq!(
        items[0],
        Item {
            problem: aha_train::data::synthetic::countdown_problem(&[3, 8, 1], 24),
            given: None,
            answer: None,
            numbers: Some(vec![3, 8, 1]),
            target: Some(24),
            row,
            line: 1,
        }
    );
    assert_eq!(
        (items[1].numbers.as_deref(), items[1].target),
        (Some(&[2, 5][..]), Some(7))
    );

    // Only the requested columns are decoded, and the schema's names are reported.
    let t = parquet::read_rows(&fixture("math.parquet"), &["problem", "nope"]).unwrap();
    assert_eq!(t.columns, ["problem", "level", "type", "solution", "extra"]);
    assert_eq!(t.rows[0].keys().collect::<Vec<_>>(), ["problem"]);
}

#[test]
fn sft_examples_from_pairs_and_chat_messages() {
    let (_, tok) = init_policy("tiny", 0, &Device::Cpu).unwrap();
    let examples = read_examples(&fixture("sft.parquet"), &tok, tok.vocab_size()).unwrap();
    assert_eq!(examples.len(), 2);
    let eos = tok.eos_token_ids()[0];
    assert_eq!(examples[1].prompt_ids, tok.encode("Q:3+4=", true).unwrap());
    let mut completion = tok.encode("<answer>7</answer>", false).unwrap();
    completion.push(eos);
    assert_eq!(examples[1].completion_ids, completion);

    // Two conversations with one and two assistant turns: three examples, each completion the
    // assistant turn as the chat template renders it.
    let examples = read_examples(&fixture("chat.parquet"), &tok, tok.vocab_size()).unwrap();
    assert_eq!(examples.len(), 3);
    let text = tok.decode(&examples[2].completion_ids, false).unwrap();
    assert!(text.starts_with('6'), "{text:?}");
    let prompt = tok.decode(&examples[2].prompt_ids, false).unwrap();
    assert!(
        prompt.contains("Be brief.") && prompt.contains("and 3+3"),
        "{prompt:?}"
    );
}

/// The error of reading `path` as GRPO problems.
fn read_error(path: &Path, fields: &Fields, missing: MissingAnswer) -> String {
    match read_items(path, fields, missing, Needs::AnyReference) {
        Ok(_) => panic!("{} read without an error", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn errors_name_the_file_the_row_and_the_column() {
    // The wrong field name: the file and the missing column, with the columns there are.
    let err = read_error(
        &fixture("gsm8k.parquet"),
        &fields("problem", "answer"),
        MissingAnswer::Error,
    );
    assert!(
        err.contains("gsm8k.parquet") && err.contains("no column `problem`"),
        "{err}"
    );
    assert!(err.contains("columns are: question, answer"), "{err}");

    // A null question in the third row (second row group).
    let err = read_error(
        &fixture("null_prompt.parquet"),
        &fields("question", "answer"),
        MissingAnswer::Error,
    );
    assert!(
        err.contains("null_prompt.parquet:3:")
            && err.contains("field `question`: expected a string"),
        "{err}"
    );

    // A timestamp where text is expected.
    let err = read_error(
        &fixture("timestamp_answer.parquet"),
        &fields("question", "answer"),
        MissingAnswer::Error,
    );
    assert!(
        err.contains("timestamp_answer.parquet:1:")
            && err.contains("column `answer`: timestamp values are not supported"),
        "{err}"
    );

    // No answer column at all, and SFT data without its columns.
    let err = read_error(
        &fixture("sft.parquet"),
        &Fields::default(),
        MissingAnswer::Skip,
    );
    assert!(err.contains("no column `answer`"), "{err}");
    let (_, tok) = init_policy("tiny", 0, &Device::Cpu).unwrap();
    let err = read_examples(&fixture("gsm8k.parquet"), &tok, tok.vocab_size())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gsm8k.parquet") && err.contains("no columns `prompt` and `completion`"),
        "{err}"
    );

    // Not Parquet at all.
    let bogus = std::env::temp_dir().join(format!("aha-not-{}.parquet", std::process::id()));
    std::fs::write(&bogus, "{\"prompt\": \"x\"}\n").unwrap();
    let err = read_error(&bogus, &Fields::default(), MissingAnswer::Error);
    assert!(err.contains("not a readable Parquet file"), "{err}");
}
