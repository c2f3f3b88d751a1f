//! The one reader of input files: every command and config that reads prompts, problems,
//! completions or SFT examples gets its rows here, as JSON objects numbered by their line.
//!
//! A file is Parquet by its extension (see [`parquet::is_parquet`]) and JSONL otherwise. JSONL
//! lines are numbered from 1 (blank lines are skipped but counted, so numbers match an editor's);
//! Parquet rows are numbered from 1 across row groups. Each row must be a JSON object. What the
//! fields mean is the caller's: this layer only reads, numbers and names the place of an error.

use std::path::Path;

use serde_json::{Map, Value};

use crate::data::parquet;
use crate::{Error, Result};

/// One row of an input file.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 1-based line (JSONL) or row (Parquet) number.
    pub line: usize,
    pub fields: Map<String, Value>,
}

/// Which Parquet columns to decode (JSONL lines are always read whole).
#[derive(Debug, Clone, Copy)]
pub enum Columns<'a> {
    All,
    /// Only these (those the file has); a MATH file's other columns are never decoded.
    Only(&'a [&'a str]),
}

/// The rows of `path` with the file's column names (JSONL: empty, lines may differ).
pub fn read_rows(path: &Path, columns: Columns<'_>) -> Result<(Vec<Row>, Vec<String>)> {
    if parquet::is_parquet(path) {
        let table = match columns {
            Columns::All => parquet::read_all_rows(path, &[])?,
            Columns::Only(names) => parquet::read_rows(path, names)?,
        };
        let rows = (table.rows.into_iter().enumerate())
            .map(|(i, fields)| Row {
                line: i + 1,
                fields,
            })
            .collect();
        return Ok((rows, table.columns));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| Error::Data {
            path: path.into(),
            line: i + 1,
            message,
        };
        match serde_json::from_str(line) {
            Ok(Value::Object(fields)) => rows.push(Row {
                line: i + 1,
                fields,
            }),
            Ok(other) => return Err(bad(format!("expected a JSON object, got {other}"))),
            Err(e) => return Err(bad(format!("invalid JSON: {e}"))),
        }
    }
    Ok((rows, Vec::new()))
}

impl Row {
    /// The error for this row of `path`.
    pub fn error(&self, path: &Path, message: impl Into<String>) -> Error {
        Error::Data {
            path: path.into(),
            line: self.line,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_lines_as_an_editor_does_and_names_bad_ones() {
        let p = std::env::temp_dir().join(format!("aha_rows_{}.jsonl", std::process::id()));
        std::fs::write(&p, "{\"a\": 1}\n\n{\"b\": [2]}\n").unwrap();
        let (rows, _) = read_rows(&p, Columns::All).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.line).collect::<Vec<_>>(),
            [1, 3],
            "the blank line 2 is skipped but counted"
        );
        assert_eq!(rows[1].fields["b"], serde_json::json!([2]));
        std::fs::write(&p, "{\"a\": 1}\n[1]\n").unwrap();
        let err = read_rows(&p, Columns::All).unwrap_err().to_string();
        assert!(
            err.ends_with(".jsonl:2: expected a JSON object, got [1]"),
            "{err}"
        );
        std::fs::write(&p, "{\"a\": \n").unwrap();
        let err = read_rows(&p, Columns::All).unwrap_err().to_string();
        assert!(err.contains(".jsonl:1: invalid JSON"), "{err}");
    }
}
