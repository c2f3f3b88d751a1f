//! The checkpoint's tokenizer: HF `tokenizer.json` through the `tokenizers` crate, plus the
//! fields of `tokenizer_config.json` aha uses (special tokens and the Jinja chat template).
//!
//! Chat templates are rendered with minijinja configured like transformers' sandbox
//! (`trim_blocks`, `lstrip_blocks`, `raise_exception`, Python-style `tojson` and string methods).
//! An undefined variable used in output is an error, not an empty string. This module does not
//! train tokenizers; [`crate::init`] builds one for from-scratch models.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::chat_template::{self, TemplateTokens};
use crate::hf_json::{parse_json, read_json, token_ids};
use crate::load::{CONFIG_FILE, GENERATION_FILE};
use crate::{Error, Result};

pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
pub const SPECIAL_TOKENS_FILE: &str = "special_tokens_map.json";
pub const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";

pub use crate::chat_template::ChatMessage;

/// What aha reads from `tokenizer_config.json`; the rest of the file is kept in `raw` and
/// written back unchanged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenizerConfig {
    pub chat_template: Option<String>,
    pub eos_token: Option<String>,
    pub pad_token: Option<String>,
    pub bos_token: Option<String>,
    pub add_bos_token: Option<bool>,
    pub raw: serde_json::Map<String, Value>,
}

/// The fields of `tokenizer_config.json` aha reads, as spelled in the file.
#[derive(Deserialize)]
struct TokenizerConfigFile {
    #[serde(default)]
    chat_template: Option<ChatTemplates>,
    #[serde(default)]
    eos_token: Option<SpecialToken>,
    #[serde(default)]
    pad_token: Option<SpecialToken>,
    #[serde(default)]
    bos_token: Option<SpecialToken>,
    #[serde(default)]
    add_bos_token: Option<bool>,
}

/// One template, or a list of named ones of which aha uses the one called "default".
#[derive(Deserialize)]
#[serde(untagged)]
enum ChatTemplates {
    One(String),
    Named(Vec<NamedTemplate>),
}

#[derive(Deserialize)]
struct NamedTemplate {
    name: String,
    template: String,
}

/// A special token given as a string or as an AddedToken object `{"content": ...}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum SpecialToken {
    Text(String),
    Added { content: String },
}

impl SpecialToken {
    fn into_text(self) -> String {
        match self {
            SpecialToken::Text(t) | SpecialToken::Added { content: t } => t,
        }
    }
}

/// The EOS ids config.json and generation_config.json add to the tokenizer's own.
#[derive(Deserialize)]
struct EosTokenIds {
    #[serde(default, with = "token_ids")]
    eos_token_id: Vec<u32>,
}

impl TokenizerConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let file: TokenizerConfigFile = parse_json(&text, path)?;
        let chat_template = match file.chat_template {
            None => None,
            Some(ChatTemplates::One(t)) => Some(t),
            Some(ChatTemplates::Named(list)) => list
                .into_iter()
                .find(|t| t.name == "default")
                .map(|t| t.template),
        };
        Ok(Self {
            chat_template,
            eos_token: file.eos_token.map(SpecialToken::into_text),
            pad_token: file.pad_token.map(SpecialToken::into_text),
            bos_token: file.bos_token.map(SpecialToken::into_text),
            add_bos_token: file.add_bos_token,
            raw: parse_json(&text, path)?,
        })
    }

    /// The file's JSON with aha's fields written over the kept ones, in the spelling both
    /// transformers 4 and 5 read: transformers 5 writes `"tokenizer_class": "TokenizersBackend"`
    /// and a list of `extra_special_tokens`, which transformers 4 cannot load.
    pub fn to_json(&self) -> Value {
        let mut obj = self.raw.clone();
        let class = obj.get("tokenizer_class").and_then(Value::as_str);
        if matches!(class, None | Some("TokenizersBackend")) {
            obj.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
        }
        obj.remove("backend");
        if obj.get("extra_special_tokens").is_some_and(Value::is_array) {
            let extra = obj.remove("extra_special_tokens").unwrap_or_default();
            obj.entry("additional_special_tokens").or_insert(extra);
        }
        let mut put = |k: &str, v: Option<Value>| match v {
            Some(v) => {
                obj.insert(k.into(), v);
            }
            None => {
                obj.remove(k);
            }
        };
        put("chat_template", self.chat_template.clone().map(Value::from));
        put("eos_token", self.eos_token.clone().map(Value::from));
        put("pad_token", self.pad_token.clone().map(Value::from));
        put("bos_token", self.bos_token.clone().map(Value::from));
        put("add_bos_token", self.add_bos_token.map(Value::from));
        Value::Object(obj)
    }
}

#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    config: TokenizerConfig,
    /// EOS ids from config.json and generation_config.json of the same checkpoint.
    extra_eos: Vec<u32>,
    /// The directory it was read from: its files are copied byte for byte on save.
    source: Option<PathBuf>,
}

impl Tokenizer {
    /// Read `tokenizer.json`, `tokenizer_config.json` (optional), `chat_template.jinja` (optional,
    /// overrides the config's template, as transformers does) and the EOS ids of `config.json`
    /// and `generation_config.json` when present.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join(TOKENIZER_FILE);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| Error::Tokenizer {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let cfg_path = dir.join(TOKENIZER_CONFIG_FILE);
        let mut config = if cfg_path.exists() {
            TokenizerConfig::from_file(&cfg_path)?
        } else {
            TokenizerConfig::default()
        };
        let tpl_path = dir.join(CHAT_TEMPLATE_FILE);
        if tpl_path.exists() {
            let tpl = std::fs::read_to_string(&tpl_path).map_err(|e| Error::io(&tpl_path, e))?;
            config.chat_template = Some(tpl);
        }
        let mut extra_eos = Vec::new();
        for file in [CONFIG_FILE, GENERATION_FILE] {
            let p = dir.join(file);
            if !p.exists() {
                continue;
            }
            extra_eos.extend(read_json::<EosTokenIds>(&p)?.eos_token_id);
        }
        let mut tok = Self::from_parts(inner, config)?;
        tok.extra_eos = extra_eos;
        tok.source = Some(dir.to_path_buf());
        Ok(tok)
    }

    /// A tokenizer built in memory (by [`crate::init`] or a demo). The special tokens named in
    /// `config` must exist in the vocabulary.
    pub fn from_parts(inner: tokenizers::Tokenizer, config: TokenizerConfig) -> Result<Self> {
        let tok = Self {
            inner,
            config,
            extra_eos: Vec::new(),
            source: None,
        };
        for (field, token) in [
            ("eos_token", &tok.config.eos_token),
            ("pad_token", &tok.config.pad_token),
            ("bos_token", &tok.config.bos_token),
        ] {
            if let Some(t) = token {
                if tok.inner.token_to_id(t).is_none() {
                    return Err(Error::Config {
                        path: tok.config_path(),
                        field: field.into(),
                        message: format!("token `{t}` is not in the vocabulary"),
                    });
                }
            }
        }
        Ok(tok)
    }

    fn config_path(&self) -> PathBuf {
        match &self.source {
            Some(d) => d.join(TOKENIZER_CONFIG_FILE),
            None => PathBuf::from("<in-memory tokenizer>"),
        }
    }

    fn tokenizer_path(&self) -> PathBuf {
        match &self.source {
            Some(d) => d.join(TOKENIZER_FILE),
            None => PathBuf::from("<in-memory tokenizer>"),
        }
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    pub fn config(&self) -> &TokenizerConfig {
        &self.config
    }

    /// Token ids of `text`. `add_special_tokens` applies the tokenizer's post-processor (and
    /// `add_bos_token` from the config), as transformers' `encode` does.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| Error::Tokenizer {
                path: self.tokenizer_path(),
                message: format!("encoding failed: {e}"),
            })?;
        let mut ids = enc.get_ids().to_vec();
        if add_special_tokens && self.config.add_bos_token == Some(true) {
            if let Some(bos) = self
                .config
                .bos_token
                .as_deref()
                .and_then(|b| self.token_to_id(b))
            {
                if ids.first() != Some(&bos) {
                    ids.insert(0, bos);
                }
            }
        }
        Ok(ids)
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        let vocab = self.vocab_size();
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::Input(format!(
                "token id {bad} is not in the tokenizer's vocabulary of {vocab}"
            )));
        }
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| Error::Tokenizer {
                path: self.tokenizer_path(),
                message: format!("decoding failed: {e}"),
            })
    }

    /// Every id that ends a completion: generation_config.json's and config.json's
    /// `eos_token_id` and tokenizer_config.json's `eos_token`, sorted, without duplicates.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        let mut ids = self.extra_eos.clone();
        if let Some(id) = self
            .config
            .eos_token
            .as_deref()
            .and_then(|t| self.token_to_id(t))
        {
            ids.push(id);
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub fn pad_token_id(&self) -> Option<u32> {
        self.config
            .pad_token
            .as_deref()
            .and_then(|t| self.token_to_id(t))
    }

    pub fn bos_token_id(&self) -> Option<u32> {
        self.config
            .bos_token
            .as_deref()
            .and_then(|t| self.token_to_id(t))
    }

    /// Vocabulary size including added tokens (may be below the model's padded `vocab_size`).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn chat_template(&self) -> Option<&str> {
        self.config.chat_template.as_deref()
    }

    /// Render `messages` with the checkpoint's chat template, as transformers'
    /// `apply_chat_template(..., tokenize=False)` does.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let path = self.config_path();
        let template = self.chat_template().ok_or_else(|| Error::Config {
            path: path.clone(),
            field: "chat_template".into(),
            message: "the tokenizer has no chat template".into(),
        })?;
        let tokens = TemplateTokens {
            bos: self.config.bos_token.as_deref(),
            eos: self.config.eos_token.as_deref(),
            pad: self.config.pad_token.as_deref(),
        };
        chat_template::render(template, messages, add_generation_prompt, tokens).map_err(
            |message| Error::Config {
                path,
                field: "chat_template".into(),
                message,
            },
        )
    }

    /// Write `tokenizer.json`, `tokenizer_config.json` and (when the source had one)
    /// `special_tokens_map.json` into `dir`.
    pub fn save_to(&self, dir: &Path) -> Result<()> {
        let tok_path = dir.join(TOKENIZER_FILE);
        match self.source.as_ref().map(|d| d.join(TOKENIZER_FILE)) {
            Some(src) => {
                std::fs::copy(&src, &tok_path).map_err(|e| Error::io(&src, e))?;
            }
            None => {
                let json = self.inner.to_string(false).map_err(|e| Error::Tokenizer {
                    path: tok_path.clone(),
                    message: format!("serialising: {e}"),
                })?;
                std::fs::write(&tok_path, json).map_err(|e| Error::io(&tok_path, e))?;
            }
        }
        let cfg_path = dir.join(TOKENIZER_CONFIG_FILE);
        let text =
            serde_json::to_string_pretty(&self.config.to_json()).map_err(|source| Error::Json {
                path: cfg_path.clone(),
                source,
            })?;
        std::fs::write(&cfg_path, text + "\n").map_err(|e| Error::io(&cfg_path, e))?;
        if let Some(src) = self.source.as_ref().map(|d| d.join(SPECIAL_TOKENS_FILE)) {
            if src.exists() {
                let dst = dir.join(SPECIAL_TOKENS_FILE);
                std::fs::copy(&src, &dst).map_err(|e| Error::io(&src, e))?;
            }
        }
        Ok(())
    }
}
