//! Reading the JSON files of a Hugging Face checkpoint (config.json, generation_config.json,
//! tokenizer_config.json, the shard index) into serde structs that mirror them.
//!
//! Every file goes through `serde_path_to_error`, so a value of the wrong type is an error that
//! names the file, the field (`rope_parameters.rope_theta`) and the line. Unknown fields are
//! ignored, as transformers ignores them. What a field must mean beyond its type is checked by
//! the caller (see [`crate::hf_config`]).

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Read `path` and parse it as `T`.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_json(&text, path)
}

/// Parse `text` as `T`; `path` names the file in errors. Malformed JSON is [`Error::Json`] (the
/// parser's message chained as its source); a well-formed file with a wrong value is
/// [`Error::Config`] naming the field.
pub(crate) fn parse_json<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = match e.path().to_string() {
            root if root == "." => "<root>".to_string(),
            field => field,
        };
        let inner = e.into_inner();
        if inner.is_data() {
            Error::Config {
                path: path.into(),
                field,
                message: inner.to_string(),
            }
        } else {
            Error::Json {
                path: path.into(),
                source: inner,
            }
        }
    })?;
    de.end().map_err(|source| Error::Json {
        path: path.into(),
        source,
    })?;
    Ok(value)
}

/// A token-id field that HF writes as one integer or a list (`eos_token_id`), for
/// `#[serde(with = "token_ids")]` on a `Vec<u32>`: `null` or absent is empty; one id is written
/// as a number, several as a list, none not at all (`skip_serializing_if = "Vec::is_empty"`).
pub(crate) mod token_ids {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(ids: &[u32], s: S) -> Result<S::Ok, S::Error> {
        match ids {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
        // Through a `Value` so that a bad element is reported against the field itself, not
        // `eos_token_id[0]`.
        let as_id = |v: &Value| {
            v.as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .ok_or_else(|| D::Error::custom(format!("expected a token id, got {v}")))
        };
        match Value::deserialize(d)? {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => items.iter().map(as_id).collect(),
            one => Ok(vec![as_id(&one)?]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, serde::Serialize, PartialEq)]
    struct Ids {
        #[serde(default, with = "token_ids", skip_serializing_if = "Vec::is_empty")]
        eos_token_id: Vec<u32>,
    }

    fn parse(text: &str) -> Result<Ids> {
        parse_json(text, Path::new("generation_config.json"))
    }

    #[test]
    fn token_ids_are_one_or_many_and_written_back_the_same_way() {
        for (text, ids) in [
            (r#"{"eos_token_id": 7}"#, vec![7]),
            (r#"{"eos_token_id": [7, 9]}"#, vec![7, 9]),
            (r#"{"eos_token_id": null}"#, vec![]),
            (r#"{}"#, vec![]),
        ] {
            let parsed = parse(text).unwrap();
            assert_eq!(parsed.eos_token_id, ids, "{text}");
            let back = serde_json::to_string(&parsed).unwrap();
            let expect = text.replace(" ", "").replace(r#""eos_token_id":null"#, "");
            assert_eq!(back, expect);
        }
    }

    #[test]
    fn a_bad_token_id_names_file_field_and_line() {
        let e = parse("{\n\"eos_token_id\": [1, -2]}")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "generation_config.json: field `eos_token_id`: expected a token id, got -2"
            ) && e.contains("line 2"),
            "{e}"
        );
        let e = parse(r#"{"eos_token_id": 4294967296}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("field `eos_token_id`"), "{e}");
    }

    #[test]
    fn malformed_json_and_trailing_text_are_json_errors() {
        for text in [r#"{"eos_token_id": 1"#, r#"{"eos_token_id": 1} x"#] {
            let e = parse(text).unwrap_err();
            assert!(matches!(e, Error::Json { .. }), "{text}: {e:?}");
        }
    }
}
