//! The model's shape and numerics, as the decoder needs them.
//!
//! `ModelConfig` is the validated runtime form; [`crate::hf_config`] reads `config.json` (as
//! written by transformers 4 or 5) into it and writes it back.

use serde::{Deserialize, Serialize};

/// The HF architectures aha implements. The variant decides weight names and small details
/// (q/k/v bias for Qwen2, per-head q/k RMSNorm for Qwen3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Architecture {
    Qwen2,
    Qwen3,
    Llama,
}

impl Architecture {
    /// The `architectures[0]` string of config.json.
    pub fn hf_class(self) -> &'static str {
        match self {
            Architecture::Qwen2 => "Qwen2ForCausalLM",
            Architecture::Qwen3 => "Qwen3ForCausalLM",
            Architecture::Llama => "LlamaForCausalLM",
        }
    }

    /// The `model_type` string of config.json.
    pub fn model_type(self) -> &'static str {
        match self {
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
            Architecture::Llama => "llama",
        }
    }
}

/// Stored dtype of the weights (compute is f32 on CPU whatever this says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredDtype {
    F32,
    Bf16,
    F16,
}

impl StoredDtype {
    pub fn hf_name(self) -> &'static str {
        match self {
            StoredDtype::F32 => "float32",
            StoredDtype::Bf16 => "bfloat16",
            StoredDtype::F16 => "float16",
        }
    }

    pub fn candle(self) -> candle_core::DType {
        match self {
            StoredDtype::F32 => candle_core::DType::F32,
            StoredDtype::Bf16 => candle_core::DType::BF16,
            StoredDtype::F16 => candle_core::DType::F16,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    /// `D`
    pub hidden_size: usize,
    /// SwiGLU inner size.
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    /// `H`
    pub num_attention_heads: usize,
    /// `K` (equal to `H` for MHA).
    pub num_key_value_heads: usize,
    /// `E`; `hidden_size / num_attention_heads` unless config.json sets it (Qwen3 does).
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v projections (Qwen2: true; Llama: `attention_bias`).
    pub attention_bias: bool,
    /// Bias on o_proj (Llama's `attention_bias` covers it too).
    pub o_bias: bool,
    /// Bias on the MLP projections (Llama's `mlp_bias`).
    pub mlp_bias: bool,
    /// Per-head RMSNorm on q and k before RoPE (Qwen3).
    pub qk_norm: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
    pub stored_dtype: StoredDtype,
}

/// The sizes in which aha's own small models differ; [`ModelConfig::qwen2`] fills in the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Qwen2Sizes {
    pub vocab_size: usize,
    /// `D`
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    /// `H`
    pub num_attention_heads: usize,
    /// `K`
    pub num_key_value_heads: usize,
    pub max_position_embeddings: usize,
}

impl ModelConfig {
    /// A Qwen2-style decoder of `sizes` with the values every aha-made model shares: q/k/v bias
    /// and nothing else, tied embeddings, `E = D / H`, RMSNorm ε 1e-6, RoPE base 10 000, f32, no
    /// token ids. The one place such a config is spelled out; callers change what differs with
    /// struct update syntax (`ModelConfig { eos_token_ids, ..ModelConfig::qwen2(sizes) }`).
    pub fn qwen2(sizes: Qwen2Sizes) -> ModelConfig {
        ModelConfig {
            architecture: Architecture::Qwen2,
            vocab_size: sizes.vocab_size,
            hidden_size: sizes.hidden_size,
            intermediate_size: sizes.intermediate_size,
            num_hidden_layers: sizes.num_hidden_layers,
            num_attention_heads: sizes.num_attention_heads,
            num_key_value_heads: sizes.num_key_value_heads,
            head_dim: sizes.hidden_size / sizes.num_attention_heads.max(1),
            rms_norm_eps: 1e-6,
            rope_theta: 10_000.0,
            max_position_embeddings: sizes.max_position_embeddings,
            tie_word_embeddings: true,
            attention_bias: true,
            o_bias: false,
            mlp_bias: false,
            qk_norm: false,
            bos_token_id: None,
            eos_token_ids: Vec::new(),
            pad_token_id: None,
            stored_dtype: StoredDtype::F32,
        }
    }
}

impl ModelConfig {
    /// Parameters in the model (embedding counted once when tied).
    pub fn num_parameters(&self) -> usize {
        let (d, e, i) = (self.hidden_size, self.head_dim, self.intermediate_size);
        let (h, k) = (self.num_attention_heads, self.num_key_value_heads);
        let mut attn = d * h * e + 2 * d * k * e + h * e * d;
        if self.attention_bias {
            attn += h * e + 2 * k * e;
        }
        if self.o_bias {
            attn += d;
        }
        if self.qk_norm {
            attn += 2 * e;
        }
        let mut mlp = 3 * d * i;
        if self.mlp_bias {
            mlp += 2 * i + d;
        }
        let layer = attn + mlp + 2 * d;
        let embed = self.vocab_size * d;
        let head = if self.tie_word_embeddings { 0 } else { embed };
        embed + head + self.num_hidden_layers * layer + d
    }

    /// Forward FLOPs for one token at context length `ctx` (2 per multiply-add; attention
    /// scores and values included). Training costs ~3x this.
    pub fn flops_per_token(&self, ctx: usize) -> f64 {
        let embed = self.vocab_size * self.hidden_size;
        let untied_head = if self.tie_word_embeddings { 0 } else { embed };
        // The embedding is a lookup, not a matmul; the head is a matmul whether tied or not.
        let matmul_params = self.num_parameters() - embed - untied_head + embed;
        let attn = 2 * self.num_hidden_layers * self.num_attention_heads * self.head_dim * ctx;
        2.0 * matmul_params as f64 + 2.0 * attn as f64
    }
}
