//! Reading Parquet datasets (what Hugging Face datasets ship) as the JSON objects the JSONL
//! readers validate, so both formats share one validation path and one set of messages.
//!
//! [`read_rows`] decodes only the columns a reader asks for. GRPO problems ([`read_items`]) keep
//! every column, because external rewards see the whole row (a code task's `tests`); a column of
//! a type with no JSON form here is then left out of the row unless the reader needs it. Rows are numbered from 1 across row groups and reported in the `line` slot of
//! [`Error::Data`], so `train.parquet:3: …` is the third row. Text comes from string columns
//! (binary columns holding UTF-8 are accepted too), numbers from integer and float columns, arrays
//! from lists, objects from structs (chat `messages` as `list<struct<role, content>>`); decimals,
//! dates, times, timestamps and maps are refused with the row and column. Uses the `parquet`
//! crate's row API, not Arrow; pages may be uncompressed, snappy, gzip or zstd.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use ::parquet::file::reader::{FileReader, SerializedFileReader};
use ::parquet::record::Field;
use ::parquet::schema::types::Type;
use serde_json::{Map, Number, Value};

use crate::data::rows::Row;
use crate::data::{items_from_rows, Fields, Item, MissingAnswer, Needs};
use crate::{Error, Result};

/// Whether `path` names a Parquet file (`.parquet` or `.pq`, any case); anything else is JSONL.
pub fn is_parquet(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"))
}

/// The decoded rows of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// Every top-level column of the file, in schema order.
    pub columns: Vec<String>,
    /// One object per row holding the requested columns that exist (nulls included).
    pub rows: Vec<Map<String, Value>>,
}

impl Rows {
    pub fn has(&self, column: &str) -> bool {
        self.columns.iter().any(|c| c == column)
    }

    /// The error for a file that lacks what a reader needs (`what`, e.g. "no column `question`").
    pub fn missing(&self, path: &Path, what: &str) -> Error {
        Error::Data {
            path: path.into(),
            line: 0,
            message: format!(
                "{what}; the file's columns are: {}",
                self.columns.join(", ")
            ),
        }
    }
}

/// Reads the columns `wanted` (those the file has) of every row of `path`.
pub fn read_rows(path: &Path, wanted: &[&str]) -> Result<Rows> {
    read_columns(path, Some(wanted), wanted)
}

/// Reads every column of every row; a value that has no JSON form is an error in a `required`
/// column and left out of its row elsewhere.
pub fn read_all_rows(path: &Path, required: &[&str]) -> Result<Rows> {
    read_columns(path, None, required)
}

fn read_columns(path: &Path, wanted: Option<&[&str]>, required: &[&str]) -> Result<Rows> {
    let bad_file = |e: ::parquet::errors::ParquetError| Error::Data {
        path: path.into(),
        line: 0,
        message: format!("not a readable Parquet file: {e}"),
    };
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = SerializedFileReader::new(file).map_err(bad_file)?;
    let root = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema();
    let columns: Vec<String> = root.get_fields().iter().map(|f| f.name().into()).collect();
    let keep: Vec<Arc<Type>> = root
        .get_fields()
        .iter()
        .filter(|f| wanted.is_none_or(|w| w.contains(&f.name())))
        .cloned()
        .collect();
    if keep.is_empty() {
        // A projection must name a column; the caller reports which ones are missing.
        return Ok(Rows {
            columns,
            rows: Vec::new(),
        });
    }
    let projection = Type::group_type_builder(root.name())
        .with_fields(keep)
        .build()
        .map_err(bad_file)?;
    let iter = reader.get_row_iter(Some(projection)).map_err(bad_file)?;
    let mut rows = Vec::new();
    for (i, row) in iter.enumerate() {
        let at = |message: String| Error::Data {
            path: path.into(),
            line: i + 1,
            message,
        };
        let row = row.map_err(|e| at(format!("cannot decode the row: {e}")))?;
        let mut object = Map::new();
        for (name, field) in row.get_column_iter() {
            match to_json(field) {
                Ok(value) => {
                    object.insert(name.clone(), value);
                }
                Err(why) if required.contains(&name.as_str()) => {
                    return Err(at(format!("column `{name}`: {why}")))
                }
                Err(_) => {}
            }
        }
        rows.push(object);
    }
    Ok(Rows { columns, rows })
}

/// A Parquet value as JSON; `Err` says why a type has no faithful JSON form here.
fn to_json(field: &Field) -> std::result::Result<Value, String> {
    let float = |x: f64| {
        Number::from_f64(x)
            .map(Value::Number)
            .ok_or_else(|| format!("{x} is not a finite number"))
    };
    Ok(match field {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(x) => Value::from(*x),
        Field::Short(x) => Value::from(*x),
        Field::Int(x) => Value::from(*x),
        Field::Long(x) => Value::from(*x),
        Field::UByte(x) => Value::from(*x),
        Field::UShort(x) => Value::from(*x),
        Field::UInt(x) => Value::from(*x),
        Field::ULong(x) => Value::from(*x),
        Field::Float16(x) => float(f64::from(x.to_f32()))?,
        Field::Float(x) => float(f64::from(*x))?,
        Field::Double(x) => float(*x)?,
        Field::Str(s) => Value::String(s.clone()),
        // Writers that predate the UTF8 annotation store text as plain binary.
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Value::String(s.into()),
            Err(_) => return Err("binary data that is not UTF-8 text".into()),
        },
        Field::Decimal(_) => return Err("decimal values are not supported".into()),
        Field::Date(_) => return Err("date values are not supported".into()),
        Field::TimeMillis(_) | Field::TimeMicros(_) => {
            return Err("time values are not supported".into())
        }
        Field::TimestampMillis(_) | Field::TimestampMicros(_) => {
            return Err("timestamp values are not supported".into())
        }
        Field::MapInternal(_) => return Err("map values are not supported".into()),
        Field::Group(row) => Value::Object(
            row.get_column_iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v)?)))
                .collect::<std::result::Result<_, String>>()?,
        ),
        Field::ListInternal(list) => Value::Array(
            list.elements()
                .iter()
                .map(to_json)
                .collect::<std::result::Result<_, _>>()?,
        ),
    })
}

/// GRPO / eval problems from a Parquet file, judged as JSONL rows are (see
/// [`crate::data::items_from_rows`]). The file needs the prompt column, `prompt_ids` or
/// `messages`, or both Countdown columns (numbers, target; the prompt is then the built-in
/// Countdown one).
pub fn read_items(
    path: &Path,
    fields: &Fields,
    missing: MissingAnswer,
    needs: Needs,
) -> Result<(Vec<Item>, usize)> {
    let wanted = [
        fields.prompt.as_str(),
        &fields.answer,
        &fields.numbers,
        &fields.target,
    ];
    let table = read_all_rows(path, &wanted)?;
    let countdown = table.has(&fields.numbers) && table.has(&fields.target);
    let prompt = [fields.prompt.as_str(), "prompt_ids", "messages"];
    if !prompt.iter().any(|c| table.has(c)) && !countdown {
        return Err(table.missing(
            path,
            &format!(
                "no column `{}` (nor `prompt_ids`, `messages`)",
                fields.prompt
            ),
        ));
    }
    if let Some(what) = needs.missing_columns(&table, fields) {
        return Err(table.missing(path, &what));
    }
    let rows = (table.rows.into_iter().enumerate())
        .map(|(i, fields)| Row {
            line: i + 1,
            fields,
        })
        .collect();
    items_from_rows(path, rows, fields, missing, needs)
}
