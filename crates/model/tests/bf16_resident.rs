//! An inference-only model keeps a bf16 checkpoint's matrices in bf16 and computes exactly what
//! the same weights widened to f32 compute: decoding logits bit for bit (the row kernel and the
//! blocked prefill GEMM widen in registers before the same FMAs), greedy tokens equal, and
//! full-sequence logprobs within f32 rounding. A trainable model still gets f32 masters.

mod support;

use std::collections::BTreeMap;

use aha_model::config::StoredDtype;
use aha_model::load::{load_checkpoint, load_model};
use aha_model::save::save_checkpoint;
use aha_model::tokenizer::Tokenizer;
use aha_model::Model;
use candle_core::{DType, Device, Tensor, D};
use support::{fixture, max_abs_diff, Scratch};

/// The bf16-resident model and its twin with every weight widened to f32.
fn twins(dir: &std::path::Path) -> (Model, Model) {
    let resident = load_model(dir, &Device::Cpu, false).unwrap();
    let ckpt = load_checkpoint(dir, &Device::Cpu).unwrap();
    let widened: BTreeMap<String, Tensor> = ckpt
        .tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.to_dtype(DType::F32).unwrap()))
        .collect();
    let wide = Model::from_tensors(&ckpt.config, &widened, false).unwrap();
    (resident, wide)
}

/// The llama fixture as stored (bf16, untied, biases) and the tied Qwen2 fixture saved in bf16.
fn bf16_checkpoints(scratch: &Scratch) -> Vec<std::path::PathBuf> {
    let src = fixture("qwen2_tied_f32");
    let model = load_model(&src, &Device::Cpu, false).unwrap();
    let tok = Tokenizer::from_dir(&src).unwrap();
    let dir = scratch.path().join("qwen2_tied_bf16");
    save_checkpoint(&model, &tok, None, &dir, StoredDtype::Bf16).unwrap();
    vec![fixture("llama_bf16_sharded"), dir]
}

fn dtype_of(model: &Model, name: &str) -> DType {
    model.tensors()[name].dtype()
}

#[test]
fn inference_loads_keep_bf16_matrices_and_training_loads_widen() {
    let scratch = Scratch::new("bf16-dtypes");
    for dir in bf16_checkpoints(&scratch) {
        let (resident, _) = twins(&dir);
        for name in [
            "model.embed_tokens.weight",
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.1.mlp.down_proj.weight",
        ] {
            assert_eq!(dtype_of(&resident, name), DType::BF16, "{dir:?} {name}");
            assert_eq!(dtype_of(&resident.detached(), name), DType::BF16, "{name}");
        }
        // Vectors are tiny and meet f32 activations: widened once at load.
        assert_eq!(dtype_of(&resident, "model.norm.weight"), DType::F32);
        let trainable = load_model(&dir, &Device::Cpu, true).unwrap();
        assert!(!trainable.vars().is_empty());
        for (name, var) in trainable.vars() {
            assert_eq!(var.dtype(), DType::F32, "{dir:?} {name}");
        }
    }
}

/// Greedy decoding of `rows` prompts of `len` tokens for `steps` steps; returns every step's
/// logits (rows, V) and the tokens.
fn greedy(model: &Model, rows: usize, len: usize, steps: usize) -> (Vec<Vec<f32>>, Vec<u32>) {
    let dev = Device::Cpu;
    let v = model.config().vocab_size as u32;
    let ids: Vec<u32> = (0..rows * len).map(|i| (i as u32 * 37 + 11) % v).collect();
    let pos: Vec<u32> = (0..rows * len).map(|i| (i % len) as u32).collect();
    let mut cache = model.new_cache(rows, len + steps).unwrap();
    let mut logits = model
        .forward_cached(
            &Tensor::from_vec(ids, (rows, len), &dev).unwrap(),
            &Tensor::from_vec(pos, (rows, len), &dev).unwrap(),
            &Tensor::ones((rows, len), DType::U8, &dev).unwrap(),
            &mut cache,
        )
        .unwrap();
    let (mut all, mut tokens) = (Vec::new(), Vec::new());
    for step in 0..steps {
        all.push(logits.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        let next: Vec<u32> = logits.argmax(D::Minus1).unwrap().to_vec1().unwrap();
        tokens.extend(&next);
        let pos = vec![(len + step) as u32; rows];
        logits = model
            .forward_cached(
                &Tensor::from_vec(next, (rows, 1), &dev).unwrap(),
                &Tensor::from_vec(pos, (rows, 1), &dev).unwrap(),
                &Tensor::ones((rows, 1), DType::U8, &dev).unwrap(),
                &mut cache,
            )
            .unwrap();
    }
    (all, tokens)
}

#[test]
fn decoding_equals_the_widened_f32_model_bit_for_bit() {
    let scratch = Scratch::new("bf16-decode");
    for dir in bf16_checkpoints(&scratch) {
        let (resident, wide) = twins(&dir);
        let (resident, wide) = (resident.detached(), wide.detached());
        // 3 rows × 5 tokens prefill through the row kernel, 4 × 20 through the blocked GEMM.
        for (rows, len) in [(3, 5), (4, 20)] {
            let (a, ta) = greedy(&resident, rows, len, 6);
            let (b, tb) = greedy(&wide, rows, len, 6);
            assert_eq!(ta, tb, "{dir:?}: greedy tokens");
            for (step, (x, y)) in a.iter().zip(&b).enumerate() {
                let same = x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
                assert!(same, "{dir:?} ({rows}×{len}) step {step}: logits differ");
            }
        }
    }
}

#[test]
fn full_sequence_logprobs_match_the_widened_f32_model() {
    let scratch = Scratch::new("bf16-score");
    for dir in bf16_checkpoints(&scratch) {
        let (resident, wide) = twins(&dir);
        let v = resident.config().vocab_size as u32;
        let ids: Vec<u32> = (0..3 * 24).map(|i| (i as u32 * 53 + 5) % v).collect();
        let ids = Tensor::from_vec(ids, (3, 24), &Device::Cpu).unwrap();
        let a: Vec<f32> = resident
            .token_logprobs(&ids)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let b: Vec<f32> = wide
            .token_logprobs(&ids)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let d = max_abs_diff(&a, &b);
        assert!(d <= 1e-5, "{dir:?}: max |Δ| {d}");
    }
}
