//! Random-initialised policies for runs that need no files (`model.init = "PRESET"`).
//!
//! `tiny`, `reference` and `small` are `aha_model::init`'s presets with its byte-level BPE
//! tokenizer (ChatML template). `demo_tiny` is a Qwen2-shaped decoder (d 64, 2 layers, 4/2 heads)
//! over `aha_model::char_tokenizer` (21 tokens): enough for smoke runs of the addition task in
//! seconds on a CPU. Weights come from `aha_model::init::random_model` (normal, std 0.02, seeded).

use aha_model::char_tokenizer::{char_tokenizer, vocabulary};
use aha_model::config::Qwen2Sizes;
use aha_model::init::{byte_level_tokenizer, random_model, Preset};
use aha_model::tokenizer::Tokenizer;
use aha_model::{Model, ModelConfig};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The random-initialised policies `model.init` names; a config spells one by its name, so an
/// unknown name fails where the config is read, naming the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum InitPreset {
    /// `demo_tiny`: d 64, 2 layers, 4/2 heads over the 21-token character tokenizer.
    DemoTiny,
    /// An `aha_model::init` size preset with its byte-level BPE tokenizer.
    Sized(Preset),
}

impl InitPreset {
    pub const ALL: [InitPreset; 4] = [
        InitPreset::DemoTiny,
        InitPreset::Sized(Preset::Tiny),
        InitPreset::Sized(Preset::Reference),
        InitPreset::Sized(Preset::Small),
    ];

    pub fn name(self) -> &'static str {
        match self {
            InitPreset::DemoTiny => "demo_tiny",
            InitPreset::Sized(p) => p.name(),
        }
    }
}

impl std::str::FromStr for InitPreset {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        InitPreset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = InitPreset::ALL.iter().map(|p| p.name()).collect();
                Error::config(
                    "model.init",
                    format!("unknown preset `{s}` (known: {})", known.join(", ")),
                )
            })
    }
}

impl TryFrom<String> for InitPreset {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<InitPreset> for String {
    fn from(p: InitPreset) -> String {
        p.name().to_string()
    }
}

/// The policy and tokenizer `model.init = "NAME"` names, weights from `seed`.
pub fn init_policy(name: &str, seed: u64, device: &Device) -> Result<(Model, Tokenizer)> {
    init_preset(name.parse()?, seed, device)
}

/// `preset`'s policy with seeded random weights (`aha_model::init::random_model`) and its
/// tokenizer.
pub fn init_preset(preset: InitPreset, seed: u64, device: &Device) -> Result<(Model, Tokenizer)> {
    match preset {
        InitPreset::DemoTiny => {
            let tokenizer = char_tokenizer()?;
            let cfg = ModelConfig {
                eos_token_ids: vec![0],
                pad_token_id: Some(0),
                ..ModelConfig::qwen2(Qwen2Sizes {
                    vocab_size: vocabulary().len(),
                    hidden_size: 64,
                    intermediate_size: 128,
                    num_hidden_layers: 2,
                    num_attention_heads: 4,
                    num_key_value_heads: 2,
                    max_position_embeddings: 512,
                })
            };
            Ok((random_model(&cfg, seed, device)?, tokenizer))
        }
        InitPreset::Sized(preset) => {
            let mut cfg = preset.config();
            let tokenizer = byte_level_tokenizer(cfg.vocab_size)?;
            cfg.eos_token_ids = tokenizer.token_to_id("<|im_end|>").into_iter().collect();
            cfg.pad_token_id = tokenizer.token_to_id("<|endoftext|>");
            cfg.bos_token_id = None;
            Ok((random_model(&cfg, seed, device)?, tokenizer))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_names_round_trip_and_unknown_names_list_the_known() {
        for p in InitPreset::ALL {
            assert_eq!(p.name().parse::<InitPreset>().unwrap(), p);
        }
        let e = "huge".parse::<InitPreset>().unwrap_err().to_string();
        assert!(
            e.contains("model.init") && e.contains("demo_tiny, tiny, reference, small"),
            "{e}"
        );
    }
}
