//! Benchmark rows for the training step and for the matmul peak.
//!
//! A training step is what the SFT/GRPO trainers do per optimizer update: forward over a batch,
//! next-token cross-entropy (mean of `-token_logprobs`), backward, AdamW (the trainers' own,
//! with torch.optim.AdamW's defaults: lr 1e-4 here, weight decay 0.01).
//! The model is a random Qwen2-shaped decoder (q/k/v bias, untied head) built from seeded random
//! tensors. Does not include data loading or rollouts.

use std::time::Instant;

use aha_model::config::Qwen2Sizes;
use aha_model::init::random_model;
use aha_model::{ModelConfig, Precision};
use aha_train::optim::{AdamW, AdamWConfig, GradAccumulator};
use anyhow::Context;
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{cpu_seconds, since, Row, Timing};

pub const MATMUL_ROW: &str = "matmul";

/// Model and batch dimensions of one training-step row.
#[derive(Debug, Clone, Copy)]
pub struct TrainShape {
    pub name: &'static str,
    pub d_model: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    /// N sequences
    pub batch: usize,
    /// T tokens per sequence
    pub seq: usize,
}

impl TrainShape {
    pub fn small() -> Self {
        Self {
            name: "train-small",
            d_model: 256,
            layers: 4,
            heads: 8,
            kv_heads: 2,
            ffn: 688,
            vocab: 1024,
            batch: 8,
            seq: 256,
        }
    }

    pub fn large() -> Self {
        Self {
            name: "train-large",
            d_model: 1024,
            layers: 4,
            heads: 16,
            kv_heads: 4,
            ffn: 2816,
            vocab: 1024,
            batch: 4,
            seq: 256,
        }
    }

    pub fn config(&self) -> ModelConfig {
        ModelConfig {
            tie_word_embeddings: false,
            eos_token_ids: vec![0],
            ..ModelConfig::qwen2(Qwen2Sizes {
                vocab_size: self.vocab,
                hidden_size: self.d_model,
                intermediate_size: self.ffn,
                num_hidden_layers: self.layers,
                num_attention_heads: self.heads,
                num_key_value_heads: self.kv_heads,
                max_position_embeddings: self.seq.max(512),
            })
        }
    }

    fn describe(&self) -> String {
        format!(
            "d{} L{} h{}/{} ff{} V{} {}x{}",
            self.d_model,
            self.layers,
            self.heads,
            self.kv_heads,
            self.ffn,
            self.vocab,
            self.batch,
            self.seq
        )
    }
}

/// The practical fp32 peak: median GFLOP/s of an n×n by n×n matmul.
pub fn matmul_row(n: usize, device: &Device, timing: Timing) -> anyhow::Result<Row> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut rand =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect() };
    let a = Tensor::from_vec(rand(n * n), (n, n), device)?;
    let b = Tensor::from_vec(rand(n * n), (n, n), device)?;
    let secs = timing.measure(|| {
        let start = Instant::now();
        let c = a.matmul(&b)?;
        drop(c);
        Ok(vec![since(start)])
    })?[0];
    let flops = 2.0 * (n as f64).powi(3);
    Ok(Row {
        name: MATMUL_ROW.into(),
        shape: format!("{n}x{n}x{n} f32"),
        seconds: secs,
        tokens_per_s: None,
        gflop_per_s: Some(flops / secs / 1e9),
        fields: Vec::new(),
        detail: String::new(),
    })
}

/// Forward + loss, backward, AdamW step on random token ids, timed per phase.
pub fn train_row(
    shape: TrainShape,
    seed: u64,
    (device, dtype): (&Device, Precision),
    timing: Timing,
) -> anyhow::Result<Row> {
    let cfg = shape.config();
    let model = random_model(&cfg, seed, device)
        .context("building the random benchmark model")?
        .with_precision(dtype);
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(1));
    let ids: Vec<u32> = (0..shape.batch * shape.seq)
        .map(|_| rng.gen_range(0..cfg.vocab_size as u32))
        .collect();
    let ids = Tensor::from_vec(ids, (shape.batch, shape.seq), device)?; // (N, T)
    let adamw = AdamWConfig {
        weight_decay: 0.01,
        ..AdamWConfig::default()
    };
    let mut opt = AdamW::new(model.vars(), adamw)?;
    let phases = timing.measure(|| {
        let cpu_start = cpu_seconds();
        let start = Instant::now();
        let loss = model.token_logprobs(&ids)?.mean_all()?.neg()?;
        device.synchronize()?; // GPUs run asynchronously: time the work, not the launch
        let fwd = since(start);
        let start = Instant::now();
        let grads = aha_model::backward(&loss)?;
        device.synchronize()?;
        let bwd = since(start);
        let start = Instant::now();
        let mut acc = GradAccumulator::new();
        acc.add(model.vars(), &grads)?;
        drop(grads);
        opt.step(&acc.finish(), 1e-4)?;
        device.synchronize()?;
        let step = since(start);
        let cpu = match (cpu_start, cpu_seconds()) {
            (Some(a), Some(b)) => b - a,
            _ => f64::NAN,
        };
        Ok(vec![fwd + bwd + step, fwd, bwd, step, cpu])
    })?;
    let tokens = (shape.batch * shape.seq) as f64;
    let flops = 3.0 * tokens * cfg.flops_per_token(shape.seq);
    Ok(Row {
        name: shape.name.into(),
        shape: shape.describe(),
        seconds: phases[0],
        tokens_per_s: Some(tokens / phases[0]),
        gflop_per_s: Some(flops / phases[0] / 1e9),
        fields: vec![
            ("fwd_ms", 1e3 * phases[1]),
            ("bwd_ms", 1e3 * phases[2]),
            ("optim_ms", 1e3 * phases[3]),
            ("cpu_s", phases[4]),
        ],
        detail: format!(
            "fwd {:.0} ms, bwd {:.0} ms, adamw {:.0} ms; cpu {:.2} s/step",
            1e3 * phases[1],
            1e3 * phases[2],
            1e3 * phases[3],
            phases[4]
        ),
    })
}
