//! Shared by the engine tests: a small random model built from seeded weights, and helpers.

use std::collections::BTreeMap;

use aha_model::config::Qwen2Sizes;
use aha_model::decoder::weight_shapes;
use aha_model::{Model, ModelConfig};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A Qwen2-shaped model (q/k/v bias, tied embeddings, GQA 4/2) small enough for tests.
pub fn tiny_config() -> ModelConfig {
    ModelConfig::qwen2(Qwen2Sizes {
        vocab_size: 300,
        hidden_size: 64,
        intermediate_size: 128,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        max_position_embeddings: 96,
    })
}

/// Uniform weights scaled by 1/sqrt(fan in) (norm weights near 1), large enough that logits
/// are spread out and greedy decoding has no near-ties.
pub fn random_model(cfg: &ModelConfig, seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = BTreeMap::new();
    for (name, shape) in weight_shapes(cfg) {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if name.ends_with("norm.weight") {
            (0..n).map(|_| rng.gen_range(0.8..1.2)).collect()
        } else {
            let fan_in = *shape.last().unwrap() as f32;
            let a = if name.contains("embed") {
                1.0
            } else {
                1.7 / fan_in.sqrt()
            };
            (0..n).map(|_| rng.gen_range(-a..a)).collect()
        };
        tensors.insert(name, Tensor::from_vec(data, shape, &Device::Cpu).unwrap());
    }
    Model::from_tensors(cfg, &tensors, false).unwrap()
}

/// Prompts of the given lengths with seeded ids.
pub fn prompts(lengths: &[usize], vocab: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    lengths
        .iter()
        .map(|&l| (0..l).map(|_| rng.gen_range(0..vocab as u32)).collect())
        .collect()
}
