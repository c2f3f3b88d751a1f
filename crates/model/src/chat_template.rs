//! Rendering HF chat templates (Jinja) with minijinja, configured to match transformers'
//! sandboxed Jinja environment: `trim_blocks` and `lstrip_blocks` on, `raise_exception`,
//! `strftime_now` (through chrono), a `tojson` that prints like Python's `json.dumps` (no HTML
//! escaping), and the Python methods templates call (`startswith`, `strip`, `split`, `items`, ...)
//! from minijinja-contrib's `pycompat`.
//!
//! It owns the template's inputs ([`ChatMessage`], the special tokens); `tokenizer.rs` calls it,
//! never the other way round.
//!
//! Undefined variables may be tested (`{% if tools %}`) but not printed, concatenated or iterated:
//! those are errors, not silent empty strings.

use minijinja::value::Value as JValue;
use minijinja::{Environment, Error as JError, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};

/// One turn of a conversation, as chat templates expect it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// The special tokens a template may print (`{{ eos_token }}`), from tokenizer_config.json.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TemplateTokens<'a> {
    pub bos: Option<&'a str>,
    pub eos: Option<&'a str>,
    pub pad: Option<&'a str>,
}

/// Render `template`; the error is a message for the caller to attach to the file.
pub(crate) fn render(
    template: &str,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    tokens: TemplateTokens<'_>,
) -> std::result::Result<String, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_filter("tojson", tojson);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_template("chat_template", template)
        .map_err(|e| describe(&e))?;
    let tpl = env
        .get_template("chat_template")
        .map_err(|e| describe(&e))?;
    let none = JValue::from(());
    let token = |t: Option<&str>| t.map(JValue::from).unwrap_or_else(|| none.clone());
    let ctx = minijinja::context! {
        messages => JValue::from_serialize(messages),
        add_generation_prompt => add_generation_prompt,
        tools => none.clone(),
        documents => none.clone(),
        bos_token => token(tokens.bos),
        eos_token => token(tokens.eos),
        pad_token => token(tokens.pad),
    };
    tpl.render(ctx).map_err(|e| describe(&e))
}

/// The error with its template line and cause chain.
fn describe(e: &JError) -> String {
    let mut msg = match e.line() {
        Some(line) => format!("template line {line}: {e}"),
        None => e.to_string(),
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

fn raise_exception(message: String) -> std::result::Result<JValue, JError> {
    Err(JError::new(
        ErrorKind::InvalidOperation,
        format!("the template raised: {message}"),
    ))
}

/// Python's `json.dumps(x, ensure_ascii=False)`: keys in insertion order, ", " and ": "
/// separators, or `indent` spaces per level.
fn tojson(value: JValue, indent: Option<usize>) -> std::result::Result<JValue, JError> {
    let mut out = String::new();
    python_json(&value, indent, 0, &mut out)?;
    Ok(JValue::from_safe_string(out))
}

fn python_json(
    v: &JValue,
    indent: Option<usize>,
    depth: usize,
    out: &mut String,
) -> std::result::Result<(), JError> {
    use minijinja::value::ValueKind;
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&v.to_string()),
        ValueKind::String => out.push_str(&serde_json::Value::from(v.to_string()).to_string()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<JValue> = v.try_iter()?.collect();
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                python_json(item, indent, depth + 1, out)?;
            }
            if !items.is_empty() {
                newline(out, depth);
            }
            out.push(']');
        }
        ValueKind::Map => {
            let keys: Vec<JValue> = v.try_iter()?.collect();
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                out.push_str(&serde_json::Value::from(key.to_string()).to_string());
                out.push_str(": ");
                python_json(&v.get_item(key)?, indent, depth + 1, out)?;
            }
            if !keys.is_empty() {
                newline(out, depth);
            }
            out.push('}');
        }
        other => {
            return Err(JError::new(
                ErrorKind::InvalidOperation,
                format!("tojson: cannot serialise a {other}"),
            ))
        }
    }
    Ok(())
}

/// `strftime_now(fmt)`: the local time formatted as Python's `datetime.now().strftime(fmt)`.
fn strftime_now(fmt: String) -> std::result::Result<String, JError> {
    use std::fmt::Write;
    let mut out = String::new();
    write!(out, "{}", chrono::Local::now().format(&fmt)).map_err(|_| {
        JError::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: `{fmt}` is not a strftime format"),
        )
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TemplateTokens<'static> {
        TemplateTokens {
            eos: Some("<|im_end|>"),
            ..Default::default()
        }
    }

    #[test]
    fn undefined_variable_in_output_is_an_error() {
        let err = render("{{ nope }}", &[], false, cfg()).unwrap_err();
        assert!(err.contains("undefined"), "{err}");
    }

    #[test]
    fn undefined_may_be_tested_and_tools_is_none() {
        let out = render(
            "{% if tools is not none %}T{% endif %}{% if nope %}N{% endif %}ok",
            &[],
            false,
            cfg(),
        )
        .unwrap();
        assert_eq!(out, "ok");
    }

    #[test]
    fn raise_exception_fails_with_the_message() {
        let err = render("{{ raise_exception('bad role') }}", &[], false, cfg()).unwrap_err();
        assert!(err.contains("bad role"), "{err}");
    }

    #[test]
    fn tojson_and_string_methods_match_python() {
        let msgs = [ChatMessage::new("user", "  <b>hi</b> ")];
        let out = render(
            "{{ messages[0] | tojson }}|{{ messages[0].content.strip() }}|\
             {% if messages[0].content.strip().startswith('<b>') %}yes{% endif %}|\
             {{ 'a,b'.split(',') | join(';') }}",
            &msgs,
            false,
            cfg(),
        )
        .unwrap();
        assert_eq!(
            out,
            r#"{"role": "user", "content": "  <b>hi</b> "}|<b>hi</b>|yes|a;b"#
        );
    }

    #[test]
    fn strftime_now_formats_today_and_refuses_a_bad_format() {
        let out = render("{{ strftime_now('%Y-%m-%d %B') }}", &[], false, cfg()).unwrap();
        let today = chrono::Local::now().date_naive();
        assert!(
            out.starts_with(&today.format("%Y-%m-%d").to_string()),
            "{out}"
        );
        let err = render("{{ strftime_now('%Q') }}", &[], false, cfg()).unwrap_err();
        assert!(err.contains("not a strftime format"), "{err}");
    }

    #[test]
    fn loop_controls_and_trim_blocks() {
        let out = render(
            "{% for i in [1,2,3] %}\n{% if i == 2 %}{% continue %}{% endif %}{{ i }}\n{% endfor %}",
            &[],
            false,
            cfg(),
        )
        .unwrap();
        assert_eq!(out, "1\n3\n");
    }
}
