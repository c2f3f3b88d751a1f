//! Shared helpers for the trainer's integration tests: tiny random models.
#![allow(dead_code)]

use std::collections::BTreeMap;

use aha_model::config::Qwen2Sizes;
use aha_model::decoder::weight_shapes;
use aha_model::{Model, ModelConfig};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};

pub fn tiny_config(vocab: usize) -> ModelConfig {
    ModelConfig {
        eos_token_ids: vec![1],
        pad_token_id: Some(0),
        ..ModelConfig::qwen2(Qwen2Sizes {
            vocab_size: vocab,
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            max_position_embeddings: 128,
        })
    }
}

/// Seeded N(0, 0.1²)-ish uniform weights, norms at 1.
pub fn tiny_model(cfg: &ModelConfig, seed: u64) -> Model {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = BTreeMap::new();
    for (name, shape) in weight_shapes(cfg) {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else {
            (0..n).map(|_| rng.gen_range(-0.15f32..0.15)).collect()
        };
        tensors.insert(name, Tensor::from_vec(data, shape, &Device::Cpu).unwrap());
    }
    Model::from_tensors(cfg, &tensors, true).unwrap()
}
