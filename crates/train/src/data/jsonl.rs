//! Reading a JSONL prompt dataset: one object per line with configurable field names.
//!
//! The prompt is the text field (a string), `prompt_ids` (token ids) or `messages` (chat turns),
//! exactly one of them, as `aha sample` reads prompts ([`Prompt::from_row`]); the answer may be a
//! string or a number; Countdown rows
//! carry an array of integers and an integer target (and may then omit the prompt: the problem
//! text is the built-in Countdown one). A row with no reference at all (no answer, no
//! numbers+target) — or without what the task needs, see [`Needs`] — is an error naming the file
//! and line, or skipped and counted, as the config says. Lines come from [`read_rows`].

use std::path::Path;

use serde_json::{Map, Value};

use crate::data::rows::{read_rows, Columns};
use crate::data::{items_from_rows, synthetic, Fields, GivenPrompt, Item, MissingAnswer, Needs};
use crate::engine::Prompt;
use crate::Result;

pub fn read_items(
    path: &Path,
    fields: &Fields,
    missing: MissingAnswer,
    needs: Needs,
) -> Result<(Vec<Item>, usize)> {
    let (rows, _) = read_rows(path, Columns::All)?;
    items_from_rows(path, rows, fields, missing, needs)
}

/// One row as an item; `Err` for a malformed or missing field.
pub fn row_item(row: &Map<String, Value>, fields: &Fields) -> std::result::Result<Item, String> {
    let forms = [fields.prompt.as_str(), "prompt_ids", "messages"];
    let (problem, given) = match forms.iter().any(|f| row.contains_key(*f)) {
        false => (None, None),
        true => match Prompt::from_row(row, &fields.prompt).map_err(|e| e.to_string())? {
            Prompt::Text(text) => (Some(text), None),
            Prompt::Ids(ids) => (Some(String::new()), Some(GivenPrompt::Ids(ids))),
            Prompt::Messages(turns) => {
                let last_user = turns.iter().rev().find(|m| m.role == "user");
                let problem = last_user.map_or_else(String::new, |m| m.content.clone());
                (Some(problem), Some(GivenPrompt::Messages(turns)))
            }
        },
    };
    let answer = match row.get(&fields.answer) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(x)) => Some(x.to_string()),
        Some(other) => {
            return Err(format!(
                "field `{}` must be a string or number, got {other}",
                fields.answer
            ))
        }
    };
    let numbers = match row.get(&fields.numbers) {
        None | Some(Value::Null) => None,
        Some(Value::Array(xs)) => Some(
            xs.iter()
                .map(Value::as_i64)
                .collect::<Option<Vec<i64>>>()
                .ok_or_else(|| {
                    format!("field `{}` must be an array of integers", fields.numbers)
                })?,
        ),
        Some(other) => {
            return Err(format!(
                "field `{}` must be an array, got {other}",
                fields.numbers
            ))
        }
    };
    let target = match row.get(&fields.target) {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .ok_or_else(|| format!("field `{}` must be an integer, got {v}", fields.target))?,
        ),
    };
    // Countdown rows may carry only numbers and target; the problem text is then the built-in one.
    let problem = match (problem, &numbers, target) {
        (Some(p), _, _) => p,
        (None, Some(n), Some(t)) => synthetic::countdown_problem(n, t),
        (None, _, _) => {
            return Err(format!(
                "missing field `{}` (or `prompt_ids`, or `messages`)",
                fields.prompt
            ))
        }
    };
    // The code reward's test cases: checked here so a bad one names its file and line.
    if let Some(tests) = row.get("tests") {
        aha_verify::code::parse_tests(Some(tests))?;
    }
    let mut rest = row.clone();
    rest.remove(&fields.prompt);
    Ok(Item {
        problem,
        given,
        answer,
        numbers,
        target,
        row: rest,
        line: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("aha_jsonl_{}_{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_rows_and_reports_bad_lines() {
        let p = write(
            "ok.jsonl",
            "{\"q\": \"1+1\", \"a\": 2}\n\n{\"q\": \"cd\", \"numbers\": [1, 2], \"target\": 3}\n",
        );
        let f = Fields {
            prompt: "q".into(),
            answer: "a".into(),
            ..Fields::default()
        };
        let (items, skipped) =
            read_items(&p, &f, MissingAnswer::Error, Needs::AnyReference).unwrap();
        assert_eq!(skipped, 0);
        assert_eq!(items[0].answer.as_deref(), Some("2"));
        // The row external rewards see: every field but the prompt.
        assert_eq!(
            Value::Object(items[0].row.clone()),
            serde_json::json!({"a": 2})
        );
        assert_eq!(items[1].numbers, Some(vec![1, 2]));

        let p = write(
            "missing.jsonl",
            "{\"q\": \"1+1\", \"a\": 2}\n{\"q\": \"2+2\"}\n",
        );
        let err = read_items(&p, &f, MissingAnswer::Error, Needs::AnyReference)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing.jsonl:2") && err.contains("`a`"),
            "{err}"
        );
        let (items, skipped) =
            read_items(&p, &f, MissingAnswer::Skip, Needs::AnyReference).unwrap();
        assert_eq!((items.len(), skipped), (1, 1));

        let p = write("bad.jsonl", "{\"q\": 5, \"a\": 2}\n");
        let err = read_items(&p, &f, MissingAnswer::Skip, Needs::AnyReference)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.jsonl:1") && err.contains("field `q`: expected a string"),
            "{err}"
        );
    }

    #[test]
    fn prompts_may_be_token_ids_or_messages_as_sample_reads_them() {
        let f = Fields::default();
        let p = write(
            "forms.jsonl",
            "{\"prompt_ids\": [5, 6], \"answer\": 1}\n\
             {\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, \
             {\"role\": \"user\", \"content\": \"1+2\"}], \"answer\": 3}\n",
        );
        let (items, _) = read_items(&p, &f, MissingAnswer::Error, Needs::Answer).unwrap();
        assert_eq!(items[0].given, Some(GivenPrompt::Ids(vec![5, 6])));
        assert_eq!((items[0].line, items[1].line), (1, 2));
        assert_eq!(items[1].problem, "1+2");
        assert!(matches!(&items[1].given, Some(GivenPrompt::Messages(m)) if m.len() == 2));
        let p = write(
            "forms_bad.jsonl",
            "{\"prompt\": \"a\", \"answer\": 1}\n{\"prompt_ids\": [1, -2], \"answer\": 1}\n",
        );
        let err = read_items(&p, &f, MissingAnswer::Error, Needs::Answer)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("forms_bad.jsonl:2: field `prompt_ids`: element 1"),
            "{err}"
        );
        let p = write(
            "forms_two.jsonl",
            "{\"prompt\": \"a\", \"prompt_ids\": [1], \"answer\": 1}\n",
        );
        let err = read_items(&p, &f, MissingAnswer::Error, Needs::Answer)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("forms_two.jsonl:1: expected exactly one of"),
            "{err}"
        );
    }

    #[test]
    fn code_rows_carry_tests_and_bad_tests_name_the_line() {
        let f = Fields::default();
        let p = write(
            "code.jsonl",
            "{\"prompt\": \"add\", \"tests\": [{\"input\": \"1 2\", \"output\": \"3\"}]}\n",
        );
        let (items, _) = read_items(&p, &f, MissingAnswer::Error, Needs::Tests).unwrap();
        assert_eq!(items[0].row["tests"][0]["output"], "3");
        let p = write(
            "code_none.jsonl",
            "{\"prompt\": \"a\", \"answer\": \"1\"}\n",
        );
        let err = read_items(&p, &f, MissingAnswer::Error, Needs::Tests)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("code_none.jsonl:1") && err.contains("missing field \"tests\""),
            "{err}"
        );
        let p = write(
            "code_bad.jsonl",
            "{\"prompt\": \"a\", \"tests\": []}\n{\"prompt\": \"b\"}\n",
        );
        let err = read_items(&p, &f, MissingAnswer::Error, Needs::Tests)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("code_bad.jsonl:1") && err.contains("\"tests\" must be a non-empty list"),
            "{err}"
        );
    }
}
