//! Prompts as users give them — plain text, token ids or chat messages — and their token ids.
//!
//! Text is encoded with the tokenizer's special tokens (`add_special_tokens = true`, as
//! transformers' `encode`). Chat messages are rendered with the checkpoint's chat template and
//! `add_generation_prompt = true`, then encoded without adding special tokens, as transformers'
//! `apply_chat_template(..., tokenize=True)` does (the template writes them itself).
//!
//! Not here: reading files (the CLI names the file and line), checking lengths against the
//! model's context (the engine does, before any compute).

use aha_model::tokenizer::{ChatMessage, Tokenizer};
use serde_json::{Map, Value};

/// One prompt, in one of the three forms a JSONL line may give.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Text(String),
    Ids(Vec<u32>),
    Messages(Vec<ChatMessage>),
}

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("expected exactly one of the fields {0}, \"prompt_ids\" or \"messages\", {1}")]
    Form(String, String),
    #[error("field `{field}`: {message}")]
    Field { field: String, message: String },
    #[error(transparent)]
    Tokenizer(#[from] aha_model::Error),
}

fn field(field: &str, message: impl Into<String>) -> PromptError {
    PromptError::Field {
        field: field.into(),
        message: message.into(),
    }
}

impl Prompt {
    /// Read the prompt of one JSONL object; other fields (an answer, an id) are left alone.
    pub fn from_json(value: &Value) -> Result<Self, PromptError> {
        match value.as_object() {
            Some(obj) => Self::from_row(obj, "prompt"),
            None => Err(PromptError::Form(
                "\"prompt\"".into(),
                format!("got a JSON {}", kind(value)),
            )),
        }
    }

    /// As [`Prompt::from_json`] on a row's fields, with the text under `text_field`
    /// (`--prompt-field`).
    pub fn from_row(obj: &Map<String, Value>, text_field: &str) -> Result<Self, PromptError> {
        let form = |found: String| PromptError::Form(format!("{text_field:?}"), found);
        let present: Vec<&str> = [text_field, "prompt_ids", "messages"]
            .into_iter()
            .filter(|k| obj.contains_key(*k))
            .collect();
        match present.as_slice() {
            [k] if *k == text_field => match &obj[text_field] {
                Value::String(s) => Ok(Prompt::Text(s.clone())),
                v => Err(field(
                    text_field,
                    format!("expected a string, got {}", kind(v)),
                )),
            },
            ["prompt_ids"] => parse_ids(&obj["prompt_ids"]).map(Prompt::Ids),
            ["messages"] => parse_messages(&obj["messages"]).map(Prompt::Messages),
            [] => Err(form("found none".into())),
            many => Err(form(format!("found {}", many.join(" and ")))),
        }
    }

    /// Token ids of the prompt. Ids are returned as given (the engine checks their range).
    pub fn to_ids(&self, tokenizer: &Tokenizer) -> Result<Vec<u32>, PromptError> {
        match self {
            Prompt::Text(text) => Ok(tokenizer.encode(text, true)?),
            Prompt::Ids(ids) => Ok(ids.clone()),
            Prompt::Messages(messages) => {
                let text = tokenizer.apply_chat_template(messages, true)?;
                Ok(tokenizer.encode(&text, false)?)
            }
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn parse_ids(v: &Value) -> Result<Vec<u32>, PromptError> {
    let arr = v.as_array().ok_or_else(|| {
        field(
            "prompt_ids",
            format!("expected an array of token ids, got {}", kind(v)),
        )
    })?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    field(
                        "prompt_ids",
                        format!("element {i}: expected a token id (an integer 0..2^32), got {x}"),
                    )
                })
        })
        .collect()
}

fn parse_messages(v: &Value) -> Result<Vec<ChatMessage>, PromptError> {
    let arr = v.as_array().ok_or_else(|| {
        field(
            "messages",
            format!(
                "expected an array of {{\"role\", \"content\"}}, got {}",
                kind(v)
            ),
        )
    })?;
    if arr.is_empty() {
        return Err(field("messages", "is empty"));
    }
    arr.iter()
        .enumerate()
        .map(|(i, m)| {
            let get = |k: &str| -> Result<String, PromptError> {
                match m.get(k) {
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(other) => Err(field(
                        &format!("messages[{i}].{k}"),
                        format!("expected a string, got {}", kind(other)),
                    )),
                    None => Err(field(&format!("messages[{i}].{k}"), "missing")),
                }
            };
            Ok(ChatMessage::new(get("role")?, get("content")?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_three_forms() {
        assert_eq!(
            Prompt::from_json(&json!({"prompt": "hi", "answer": 3})).unwrap(),
            Prompt::Text("hi".into())
        );
        assert_eq!(
            Prompt::from_json(&json!({"prompt_ids": [1, 2]})).unwrap(),
            Prompt::Ids(vec![1, 2])
        );
        assert_eq!(
            Prompt::from_json(&json!({"messages": [{"role": "user", "content": "x"}]})).unwrap(),
            Prompt::Messages(vec![ChatMessage::new("user", "x")])
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = |v: Value| Prompt::from_json(&v).unwrap_err().to_string();
        assert!(e(json!({})).contains("found none"));
        assert!(e(json!({"prompt": "a", "messages": []})).contains("prompt and messages"));
        assert!(e(json!({"prompt": 3})).contains("`prompt`"));
        assert!(e(json!({"prompt_ids": [1, -2]})).contains("element 1"));
        assert!(e(json!({"messages": [{"role": "user"}]})).contains("messages[0].content"));
        assert!(e(json!([1])).contains("array"));
    }
}
