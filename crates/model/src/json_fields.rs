//! Reading HF JSON files (config.json, generation_config.json, tokenizer_config.json, the
//! shard index) field by field, so every error names the file and the field. Not a schema:
//! each caller decides which fields it needs.

use std::path::Path;

use crate::{Error, Result};

/// A JSON object read field by field, so every error names the file and the field.
pub(crate) struct Fields<'a> {
    pub obj: &'a serde_json::Map<String, serde_json::Value>,
    pub path: &'a Path,
}

impl<'a> Fields<'a> {
    pub fn new(value: &'a serde_json::Value, path: &'a Path) -> Result<Self> {
        match value.as_object() {
            Some(obj) => Ok(Self { obj, path }),
            None => Err(Error::Config {
                path: path.into(),
                field: "<root>".into(),
                message: "expected a JSON object".into(),
            }),
        }
    }

    pub fn err(&self, field: &str, message: impl Into<String>) -> Error {
        Error::Config {
            path: self.path.into(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field, treating JSON `null` as absent (transformers writes `null` for unset options).
    pub fn get(&self, field: &str) -> Option<&'a serde_json::Value> {
        self.obj.get(field).filter(|v| !v.is_null())
    }

    pub fn opt_usize(&self, field: &str) -> Result<Option<usize>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v.as_u64().map(|x| Some(x as usize)).ok_or_else(|| {
                self.err(field, format!("expected a non-negative integer, got {v}"))
            }),
        }
    }

    pub fn usize(&self, field: &str) -> Result<usize> {
        self.opt_usize(field)?
            .ok_or_else(|| self.err(field, "missing"))
    }

    pub fn opt_f64(&self, field: &str) -> Result<Option<f64>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.err(field, format!("expected a number, got {v}"))),
        }
    }

    pub fn opt_bool(&self, field: &str) -> Result<Option<bool>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.err(field, format!("expected true or false, got {v}"))),
        }
    }

    pub fn opt_str(&self, field: &str) -> Result<Option<&'a str>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.err(field, format!("expected a string, got {v}"))),
        }
    }

    /// A token id that may be an integer or a list of integers (`eos_token_id`).
    pub fn token_ids(&self, field: &str) -> Result<Vec<u32>> {
        let as_id = |v: &serde_json::Value| {
            v.as_u64()
                .filter(|&x| x <= u32::MAX as u64)
                .map(|x| x as u32)
                .ok_or_else(|| self.err(field, format!("expected a token id, got {v}")))
        };
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(serde_json::Value::Array(items)) => items.iter().map(as_id).collect(),
            Some(v) => Ok(vec![as_id(v)?]),
        }
    }

    pub fn opt_token_id(&self, field: &str) -> Result<Option<u32>> {
        match self.get(field) {
            None => Ok(None),
            Some(serde_json::Value::Array(_)) => {
                Err(self.err(field, "expected a single token id, got a list"))
            }
            Some(_) => Ok(self.token_ids(field)?.first().copied()),
        }
    }
}
