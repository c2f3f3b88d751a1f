//! Benchmark rows for rollouts: [`aha_train::engine::generate_groups`] on the reference shape.
//!
//! The model is the `reference` preset (d 256, 4 layers, 8/2 heads, SwiGLU 688, vocab 1024) with
//! seeded random weights, or the checkpoint `--model` names; completions are sampled at
//! temperature 1 with no EOS, so every row runs to `max_new_tokens`. Tokens/s counts generated tokens over wall time, prefill included, as
//! `bench/torch_generate.py` does for PyTorch. Rows:
//!
//! - `generate`: 16 prompts × 32 tokens, 128 new tokens each (G = 1).
//! - `group-shared`: 8 prompts × 256 tokens, G = 16, 64 new tokens: prefill once, fork the cache.
//! - `group-unshared`: the same 128 rows, each prefilled on its own (no prefix sharing).

use std::path::Path;
use std::time::Instant;

use aha_model::init::{random_model, Preset};
use aha_model::{Model, Precision};
use aha_train::engine::{generate_groups, SamplingParams};
use anyhow::Context;
use candle_core::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{cpu_seconds, since, Row, Timing};

/// One rollout case.
#[derive(Debug, Clone, Copy)]
pub struct GenShape {
    pub name: &'static str,
    /// B prompts
    pub prompts: usize,
    /// tokens per prompt
    pub prompt_len: usize,
    /// G completions per prompt
    pub g: usize,
    pub new_tokens: usize,
    /// Prefill each of the B·G rows separately instead of forking one prefill.
    pub unshared: bool,
}

impl GenShape {
    pub fn decode() -> Self {
        Self {
            name: "generate",
            prompts: 16,
            prompt_len: 32,
            g: 1,
            new_tokens: 128,
            unshared: false,
        }
    }

    pub fn group(unshared: bool) -> Self {
        Self {
            name: if unshared {
                "group-unshared"
            } else {
                "group-shared"
            },
            prompts: 8,
            prompt_len: 256,
            g: 16,
            new_tokens: 64,
            unshared,
        }
    }
}

/// The model every generation row uses: the checkpoint at `dir`, or the reference preset with
/// seeded random weights.
pub fn bench_model(
    dir: Option<&Path>,
    seed: u64,
    (device, dtype): (&Device, Precision),
) -> anyhow::Result<Model> {
    let model = match dir {
        Some(dir) => aha_model::load::load_model(dir, device, false)
            .with_context(|| format!("loading the model for bench from {}", dir.display()))?,
        None => random_model(&Preset::Reference.config(), seed, device)?,
    };
    Ok(model.with_precision(dtype))
}

/// Time `generate_groups` on `shape`.
pub fn generation_row(
    model: &Model,
    shape: GenShape,
    seed: u64,
    timing: Timing,
) -> anyhow::Result<Row> {
    let cfg = model.config();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let prompts: Vec<Vec<u32>> = (0..shape.prompts)
        .map(|_| {
            (0..shape.prompt_len)
                .map(|_| rng.gen_range(0..cfg.vocab_size as u32))
                .collect()
        })
        .collect();
    let (prompts, g) = if shape.unshared {
        let repeated = prompts
            .iter()
            .flat_map(|p| std::iter::repeat_n(p.clone(), shape.g))
            .collect();
        (repeated, 1)
    } else {
        (prompts, shape.g)
    };
    let params = SamplingParams {
        temperature: 1.0,
        max_new_tokens: shape.new_tokens,
        seed,
        ..SamplingParams::default()
    };
    let tokens = shape.prompts * shape.g * shape.new_tokens;
    let phases = timing.measure(|| {
        let cpu_start = cpu_seconds();
        let start = Instant::now();
        let groups = generate_groups(model, &prompts, g, &params, None)?;
        let elapsed = since(start);
        let made: usize = groups
            .iter()
            .flat_map(|gr| &gr.completions)
            .map(|c| c.ids.len())
            .sum();
        anyhow::ensure!(made == tokens, "generated {made} tokens, expected {tokens}");
        let cpu = match (cpu_start, cpu_seconds()) {
            (Some(a), Some(b)) => b - a,
            _ => f64::NAN,
        };
        Ok(vec![elapsed, cpu])
    })?;
    let (secs, cpu) = (phases[0], phases[1]);
    let tps = tokens as f64 / secs;
    // Forward FLOPs per generated token at the mean context length (prefill excluded).
    let ctx = shape.prompt_len + shape.new_tokens / 2;
    let gflops = tps * cfg.flops_per_token(ctx) / 1e9;
    Ok(Row {
        name: shape.name.to_string(),
        shape: format!(
            "{} {}x{} G={} +{}",
            model_label(cfg),
            shape.prompts,
            shape.prompt_len,
            shape.g,
            shape.new_tokens
        ),
        seconds: secs,
        tokens_per_s: Some(tps),
        gflop_per_s: Some(gflops),
        fields: vec![
            ("ms_per_token_step", 1e3 * secs / shape.new_tokens as f64),
            ("cpu_s", cpu),
        ],
        detail: format!(
            "{:.2} ms/step; cpu {cpu:.2} s",
            1e3 * secs / shape.new_tokens as f64
        ),
    })
}

/// `d256 L4 V1024`: the model's size, for the shape column.
pub fn model_label(cfg: &aha_model::ModelConfig) -> String {
    format!(
        "d{} L{} V{}",
        cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size
    )
}
