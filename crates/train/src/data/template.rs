//! Prompt templates: how a problem becomes the text the policy continues.
//!
//! `r1_zero` is DeepSeek-R1-Zero's template (arXiv:2501.12948, Table 1), `chat` renders a user
//! turn with the checkpoint's own chat template, `format` substitutes `{prompt}` (and, for
//! Countdown, `{numbers}` and `{target}`) into a string. `raw` is the problem text as is. A
//! prompt the row gives ready-made (`prompt_ids`, `messages`: [`GivenPrompt`]) is used as given
//! under every template.

use aha_model::tokenizer::{ChatMessage, Tokenizer};
use serde::{Deserialize, Serialize};

use crate::data::{GivenPrompt, Item};
use crate::{Error, Result};

pub const R1_ZERO_TEMPLATE: &str = "A conversation between User and Assistant. The user asks a \
question, and the Assistant solves it. The assistant first thinks about the reasoning process in \
the mind and then provides the user with the answer. The reasoning process and answer are \
enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., <think> \
reasoning process here </think> <answer> answer here </answer>. User: {prompt}. Assistant:";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PromptTemplate {
    #[default]
    R1Zero,
    Chat,
    Format {
        format: String,
    },
    Raw,
}

/// The command-line spelling: `r1_zero`, `chat`, `raw`, or a format string containing
/// `{prompt}`.
impl std::str::FromStr for PromptTemplate {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "r1_zero" => PromptTemplate::R1Zero,
            "chat" => PromptTemplate::Chat,
            "raw" => PromptTemplate::Raw,
            f if f.contains("{prompt}") => PromptTemplate::Format { format: f.into() },
            _ => {
                return Err(Error::config(
                    "template",
                    "expected r1_zero, chat, raw or a format string with {prompt}",
                ))
            }
        })
    }
}

impl PromptTemplate {
    pub fn validate(&self) -> Result<()> {
        match self {
            PromptTemplate::Format { format } if !format.contains("{prompt}") => Err(
                Error::config("data.template.format", "must contain `{prompt}`"),
            ),
            _ => Ok(()),
        }
    }

    /// The prompt text for `item`.
    pub fn render(&self, item: &Item, tokenizer: &Tokenizer) -> Result<String> {
        match &item.given {
            Some(GivenPrompt::Ids(ids)) => return Ok(tokenizer.decode(ids, false)?),
            Some(GivenPrompt::Messages(turns)) => {
                return Ok(tokenizer.apply_chat_template(turns, true)?)
            }
            None => {}
        }
        let fill = |f: &str| {
            let mut s = f.replace("{prompt}", &item.problem);
            if let Some(n) = &item.numbers {
                s = s.replace("{numbers}", &format!("{n:?}"));
            }
            if let Some(t) = item.target {
                s = s.replace("{target}", &t.to_string());
            }
            s
        };
        Ok(match self {
            PromptTemplate::R1Zero => fill(R1_ZERO_TEMPLATE),
            PromptTemplate::Format { format } => fill(format),
            PromptTemplate::Raw => item.problem.clone(),
            PromptTemplate::Chat => tokenizer
                .apply_chat_template(&[ChatMessage::new("user", item.problem.clone())], true)?,
        })
    }

    /// Token ids of the rendered prompt. Chat output already holds its special tokens; other
    /// templates get the tokenizer's own (e.g. a BOS).
    pub fn encode(&self, item: &Item, tokenizer: &Tokenizer) -> Result<Vec<u32>> {
        let (ids, text) = match &item.given {
            Some(GivenPrompt::Ids(ids)) => (ids.clone(), String::new()),
            // Chat output holds its special tokens already, as for the chat template.
            Some(GivenPrompt::Messages(_)) => {
                let text = self.render(item, tokenizer)?;
                (tokenizer.encode(&text, false)?, text)
            }
            None => {
                let text = self.render(item, tokenizer)?;
                let special = !matches!(self, PromptTemplate::Chat);
                (tokenizer.encode(&text, special)?, text)
            }
        };
        if ids.is_empty() {
            return Err(Error::Data {
                path: "<prompt>".into(),
                line: item.line,
                message: format!("prompt `{text}` encodes to no tokens"),
            });
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_command_line_spelling() {
        assert_eq!(
            "r1_zero".parse::<PromptTemplate>().unwrap(),
            PromptTemplate::R1Zero
        );
        assert_eq!(
            "chat".parse::<PromptTemplate>().unwrap(),
            PromptTemplate::Chat
        );
        assert_eq!(
            "raw".parse::<PromptTemplate>().unwrap(),
            PromptTemplate::Raw
        );
        assert_eq!(
            "Q:{prompt}=".parse::<PromptTemplate>().unwrap(),
            PromptTemplate::Format {
                format: "Q:{prompt}=".into()
            }
        );
        let err = "r1zero".parse::<PromptTemplate>().unwrap_err().to_string();
        assert!(err.contains("expected r1_zero, chat, raw"), "{err}");
    }
}
