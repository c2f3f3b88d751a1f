//! `aha init`: write a random-initialised Hugging Face checkpoint with a fresh byte-level BPE
//! tokenizer, for training from scratch.

use std::path::PathBuf;

use aha_model::config::StoredDtype;
use aha_model::init::{init_checkpoint, sized_config, Preset, SizeOverrides};
use aha_model::Architecture;
use anyhow::Context;
use clap::ValueEnum;

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum PresetName {
    /// d 64, 2 layers, 4/2 heads, vocab 320, tied embeddings: for tests.
    Tiny,
    /// d 256, 4 layers, 8/2 heads, SwiGLU 688, vocab 1024, untied: the benchmark shape.
    Reference,
    /// d 512, 8 layers, 8/2 heads, SwiGLU 1408, vocab 4096, tied.
    Small,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ArchName {
    /// Qwen2ForCausalLM: q/k/v bias.
    Qwen2,
    /// Qwen3ForCausalLM: per-head q/k RMSNorm, no bias.
    Qwen3,
    /// LlamaForCausalLM: no bias.
    Llama,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum DtypeName {
    F32,
    Bf16,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Writes config.json, model.safetensors, tokenizer.json, tokenizer_config.json (ChatML template)
and generation_config.json; transformers and vLLM load the result. Weights are normal(0, 0.02),
norms 1, biases 0, from --seed: the same arguments give the same files. The tokenizer has 256
byte tokens, the special tokens <|endoftext|> <|im_start|> <|im_end|> <think> </think> <answer>
</answer> (ids 0-6), and merges learned on a built-in arithmetic corpus up to the vocab size.
An existing --out directory is replaced atomically.")]
pub struct Args {
    /// Directory to write the checkpoint into.
    #[arg(long)]
    out: PathBuf,
    /// Size preset; the flags below override its sizes.
    #[arg(long, value_enum, default_value = "tiny")]
    preset: PresetName,
    /// Architecture written to config.json.
    #[arg(long, value_enum, default_value = "qwen2")]
    arch: ArchName,
    /// Hidden size D.
    #[arg(long)]
    hidden_size: Option<usize>,
    /// Decoder layers.
    #[arg(long)]
    layers: Option<usize>,
    /// Query heads H (must divide the hidden size).
    #[arg(long)]
    heads: Option<usize>,
    /// Key-value heads K (must divide H; K < H is grouped-query attention).
    #[arg(long)]
    kv_heads: Option<usize>,
    /// SwiGLU inner size.
    #[arg(long)]
    intermediate_size: Option<usize>,
    /// Model vocabulary (at least 263); the tokenizer learns merges up to this size.
    #[arg(long)]
    vocab_size: Option<usize>,
    /// Longest sequence the model accepts.
    #[arg(long, value_parser = crate::args::positive)]
    max_positions: Option<usize>,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stored weight dtype (aha computes in f32 either way).
    #[arg(long, value_enum, default_value = "f32")]
    dtype: DtypeName,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let preset = match args.preset {
        PresetName::Tiny => Preset::Tiny,
        PresetName::Reference => Preset::Reference,
        PresetName::Small => Preset::Small,
    };
    let architecture = match args.arch {
        ArchName::Qwen2 => Architecture::Qwen2,
        ArchName::Qwen3 => Architecture::Qwen3,
        ArchName::Llama => Architecture::Llama,
    };
    let dtype = match args.dtype {
        DtypeName::F32 => StoredDtype::F32,
        DtypeName::Bf16 => StoredDtype::Bf16,
    };
    let overrides = SizeOverrides {
        architecture: Some(architecture),
        hidden_size: args.hidden_size,
        num_hidden_layers: args.layers,
        num_attention_heads: args.heads,
        num_key_value_heads: args.kv_heads,
        intermediate_size: args.intermediate_size,
        vocab_size: args.vocab_size,
        max_position_embeddings: args.max_positions,
        tie_word_embeddings: None,
    };
    let cfg = sized_config(preset, &overrides).context("checking the model size")?;
    let cfg = init_checkpoint(&args.out, &cfg, args.seed, dtype)
        .with_context(|| format!("writing the checkpoint to {}", args.out.display()))?;
    eprintln!(
        "wrote {} ({}, {:.2}M parameters, d {}, {} layers, {}/{} heads, vocab {}) to {}",
        preset.name(),
        cfg.architecture.hf_class(),
        cfg.num_parameters() as f64 / 1e6,
        cfg.hidden_size,
        cfg.num_hidden_layers,
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.vocab_size,
        args.out.display()
    );
    Ok(())
}
