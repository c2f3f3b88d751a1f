//! Whole-model checks on small random models of each architecture variant (Qwen2 with q/k/v bias
//! and tied embeddings, Llama with GQA and an untied head, Qwen3 with q/k norm and a head dim
//! that is not D/H):
//!
//! - every trainable parameter receives a nonzero, finite gradient from a token-logprob loss (an
//!   op that silently drops its backward, as candle's fused ops do, fails this);
//! - the training forward and the KV-cache decoding forward give the same logits.

use std::collections::BTreeMap;

use aha_model::config::Qwen2Sizes;
use aha_model::decoder::weight_shapes;
use aha_model::{Architecture, KvCache, Model, ModelConfig};
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn config(arch: Architecture) -> ModelConfig {
    let base = ModelConfig {
        architecture: arch,
        tie_word_embeddings: false,
        attention_bias: false,
        eos_token_ids: vec![0],
        ..ModelConfig::qwen2(Qwen2Sizes {
            vocab_size: 61,
            hidden_size: 32,
            intermediate_size: 48,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            max_position_embeddings: 64,
        })
    };
    match arch {
        Architecture::Qwen2 => ModelConfig {
            attention_bias: true,
            tie_word_embeddings: true,
            ..base
        },
        Architecture::Llama => ModelConfig {
            num_key_value_heads: 1,
            ..base
        },
        Architecture::Qwen3 => ModelConfig {
            qk_norm: true,
            head_dim: 16,
            ..base
        },
    }
}

/// Random weights: matrices and biases uniform in ±0.2, norm weights around 1.
fn random_model(cfg: &ModelConfig, seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tensors: BTreeMap<String, Tensor> = weight_shapes(cfg)
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let norm = name.ends_with("norm.weight");
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    let u = rng.gen_range(-0.2f32..0.2);
                    if norm {
                        1.0 + u
                    } else {
                        u
                    }
                })
                .collect();
            let t = Tensor::from_vec(v, shape, &Device::Cpu).unwrap();
            (name, t)
        })
        .collect();
    Model::from_tensors(cfg, &tensors, true).unwrap()
}

fn random_ids(cfg: &ModelConfig, n: usize, t: usize, seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ids: Vec<u32> = (0..n * t)
        .map(|_| rng.gen_range(0..cfg.vocab_size as u32))
        .collect();
    Tensor::from_vec(ids, (n, t), &Device::Cpu).unwrap()
}

const ARCHS: [Architecture; 3] = [
    Architecture::Qwen2,
    Architecture::Llama,
    Architecture::Qwen3,
];

#[test]
fn every_parameter_gets_a_gradient() {
    for arch in ARCHS {
        let cfg = config(arch);
        let model = random_model(&cfg, 1);
        assert_eq!(model.vars().len(), weight_shapes(&cfg).len(), "{arch:?}");
        let ids = random_ids(&cfg, 3, 9, 2);
        let loss = model
            .token_logprobs(&ids)
            .unwrap()
            .mean_all()
            .unwrap()
            .neg()
            .unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in model.vars() {
            let g = grads
                .get(var)
                .unwrap_or_else(|| panic!("{arch:?}: {name} got no gradient"));
            let g: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
            assert!(
                g.iter().all(|v| v.is_finite()),
                "{arch:?}: {name} has a non-finite gradient"
            );
            let norm: f32 = g.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!(norm > 1e-8, "{arch:?}: {name} has a zero gradient");
        }
    }
}

/// `aha_model::backward` (the fused ops' weight gradients put into the store directly) gives
/// every parameter candle's own `backward`'s gradient. Exactly, except a tied embedding: it gets
/// gradient from the fused head and from candle's embedding backward, and the two now add in the
/// other order (the head's part last), so it agrees to rounding. The ids repeat tokens, so the
/// embedding's rows take several additions each.
#[test]
fn direct_weight_gradients_equal_candles() {
    for arch in ARCHS {
        let cfg = config(arch);
        let model = random_model(&cfg, 5);
        let ids = random_ids(&cfg, 4, 40, 6);
        let loss = || {
            model
                .token_logprobs(&ids)
                .unwrap()
                .mean_all()
                .unwrap()
                .neg()
                .unwrap()
        };
        let (plain, direct) = (
            loss().backward().unwrap(),
            aha_model::backward(&loss()).unwrap(),
        );
        for (name, var) in model.vars() {
            let values = |store: &candle_core::backprop::GradStore| -> Vec<f32> {
                let g = store
                    .get(var)
                    .unwrap_or_else(|| panic!("{arch:?}: {name}: no gradient"));
                g.flatten_all().unwrap().to_vec1().unwrap()
            };
            let (a, b) = (values(&plain), values(&direct));
            if cfg.tie_word_embeddings && name == "model.embed_tokens.weight" {
                let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
                let worst = a
                    .iter()
                    .zip(&b)
                    .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(worst <= 1e-6 * scale, "{arch:?}: {name}: off by {worst}");
            } else {
                assert_eq!(a, b, "{arch:?}: {name}");
            }
        }
    }
}

/// Logits of the training forward, (N, T, V), against one prefill chunk of 3 tokens followed by
/// single-token decoding steps on a KV cache.
#[test]
fn training_and_cached_forwards_agree() {
    for arch in ARCHS {
        let cfg = config(arch);
        let model = random_model(&cfg, 3);
        let (n, t, v) = (2, 10, cfg.vocab_size);
        let ids = random_ids(&cfg, n, t, 4);
        let full = model
            .logits(&model.forward(&ids, None, None).unwrap())
            .unwrap(); // (N, T, V)

        let infer = model.detached();
        let mut cache = KvCache::new(&cfg, n, t, &Device::Cpu).unwrap();
        let mut start = 0;
        for s in [3].into_iter().chain(std::iter::repeat_n(1, t - 3)) {
            let chunk = ids.narrow(1, start, s).unwrap();
            let pos: Vec<u32> = (0..n)
                .flat_map(|_| start as u32..(start + s) as u32)
                .collect();
            let pos = Tensor::from_vec(pos, (n, s), &Device::Cpu).unwrap();
            let valid = Tensor::ones((n, s), DType::U32, &Device::Cpu).unwrap();
            let got = infer
                .forward_cached(&chunk, &pos, &valid, &mut cache)
                .unwrap(); // (N, V)
            let want = full
                .narrow(1, start + s - 1, 1)
                .unwrap()
                .reshape((n, v))
                .unwrap();
            let diff = (got - want)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                diff < 1e-4,
                "{arch:?}: position {}: logits differ by {diff}",
                start + s - 1
            );
            start += s;
        }
    }
}
