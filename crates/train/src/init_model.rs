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

use crate::{Error, Result};

pub const PRESETS: &[&str] = &["demo_tiny", "tiny", "reference", "small"];

pub fn init_policy(preset: &str, seed: u64, device: &Device) -> Result<(Model, Tokenizer)> {
    match preset {
        "demo_tiny" => {
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
            Ok((random_weights(&cfg, seed, device)?, tokenizer))
        }
        name => {
            let preset = Preset::ALL.into_iter().find(|p| p.name() == name);
            let Some(preset) = preset else {
                return Err(Error::config(
                    "model.init",
                    format!("unknown preset `{name}` (known: {})", PRESETS.join(", ")),
                ));
            };
            let mut cfg = preset.config();
            let tokenizer = byte_level_tokenizer(cfg.vocab_size)?;
            cfg.eos_token_ids = tokenizer.token_to_id("<|im_end|>").into_iter().collect();
            cfg.pad_token_id = tokenizer.token_to_id("<|endoftext|>");
            cfg.bos_token_id = None;
            Ok((random_weights(&cfg, seed, device)?, tokenizer))
        }
    }
}

/// A trainable model with seeded random weights.
pub fn random_weights(cfg: &ModelConfig, seed: u64, device: &Device) -> Result<Model> {
    Ok(random_model(cfg, seed, device)?)
}
