//! Random-initialised policies for runs that need no files (`model.init = "PRESET"`).
//!
//! `demo_tiny` is a Qwen2-shaped decoder (d 64, 2 layers, 4/2 heads) over the demo's 21-token
//! character tokenizer: enough for smoke runs of the addition task in seconds on a CPU. Weights
//! are uniform with std 0.02 from a seeded ChaCha stream, norms at 1, embeddings tied.

use std::collections::BTreeMap;

use aha_model::config::StoredDtype;
use aha_model::decoder::weight_shapes;
use aha_model::tokenizer::{Tokenizer, TokenizerConfig};
use aha_model::{Architecture, Model, ModelConfig};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::demo::tokenizer::{demo_tokenizer, vocabulary, EOS};
use crate::{Error, Result};

pub const PRESETS: &[&str] = &["demo_tiny"];

pub fn init_policy(preset: &str, seed: u64, device: &Device) -> Result<(Model, Tokenizer)> {
    match preset {
        "demo_tiny" => {
            let inner = demo_tokenizer().map_err(|e| Error::config("model.init", e.to_string()))?;
            let config = TokenizerConfig {
                eos_token: Some(EOS.into()),
                pad_token: Some(EOS.into()),
                ..TokenizerConfig::default()
            };
            let tokenizer = Tokenizer::from_parts(inner, config)?;
            let cfg = ModelConfig {
                architecture: Architecture::Qwen2,
                vocab_size: vocabulary().len(),
                hidden_size: 64,
                intermediate_size: 128,
                num_hidden_layers: 2,
                num_attention_heads: 4,
                num_key_value_heads: 2,
                head_dim: 16,
                rms_norm_eps: 1e-6,
                rope_theta: 10000.0,
                max_position_embeddings: 512,
                tie_word_embeddings: true,
                attention_bias: true,
                o_bias: false,
                mlp_bias: false,
                qk_norm: false,
                bos_token_id: None,
                eos_token_ids: vec![0],
                pad_token_id: Some(0),
                stored_dtype: StoredDtype::F32,
            };
            Ok((random_weights(&cfg, seed, device)?, tokenizer))
        }
        other => Err(Error::config(
            "model.init",
            format!("unknown preset `{other}` (known: {})", PRESETS.join(", ")),
        )),
    }
}

/// A trainable model with seeded random weights.
pub fn random_weights(cfg: &ModelConfig, seed: u64, device: &Device) -> Result<Model> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let a = 0.02f32 * 3f32.sqrt();
    let mut tensors = BTreeMap::new();
    for (name, shape) in weight_shapes(cfg) {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            (0..n).map(|_| rng.gen_range(-a..a)).collect()
        };
        tensors.insert(name, Tensor::from_vec(data, shape, device)?);
    }
    Ok(Model::from_tensors(cfg, &tensors, true)?)
}
