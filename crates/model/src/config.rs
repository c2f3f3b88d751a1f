//! The model's shape and numerics, as the decoder needs them.
//!
//! `ModelConfig` is the validated runtime form; the raw `config.json` (as written by transformers
//! 4 or 5) is parsed into it by [`ModelConfig::from_hf_file`] / [`ModelConfig::from_hf_json`] and
//! written back by [`ModelConfig::to_hf_json`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::json_fields::Fields;
use crate::{Error, Result};

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

impl ModelConfig {
    /// Read and validate a Hugging Face `config.json`.
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_hf_json(&text, path)
    }

    /// Parse `config.json` text as written by transformers 4 (`rope_theta`, `torch_dtype`) or 5
    /// (`rope_parameters`, `dtype`). `path` is only used in error messages.
    pub fn from_hf_json(text: &str, path: &Path) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|source| Error::Json {
                path: path.into(),
                source,
            })?;
        let f = Fields::new(&value, path)?;
        let architecture = architecture(&f)?;
        let unsupported = |message: String| Error::Unsupported {
            path: path.into(),
            message,
        };

        if let Some(act) = f.opt_str("hidden_act")? {
            if act != "silu" {
                return Err(unsupported(format!(
                    "hidden_act `{act}` (aha implements SwiGLU with silu)"
                )));
            }
        }
        let hidden_size = f.usize("hidden_size")?;
        let num_attention_heads = f.usize("num_attention_heads")?;
        let num_key_value_heads = f
            .opt_usize("num_key_value_heads")?
            .unwrap_or(num_attention_heads);
        if num_attention_heads == 0 || hidden_size == 0 {
            return Err(f.err(
                "num_attention_heads",
                "hidden_size and heads must be positive",
            ));
        }
        if num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            return Err(f.err(
                "num_key_value_heads",
                format!(
                    "{num_key_value_heads} does not divide num_attention_heads \
                     ({num_attention_heads})"
                ),
            ));
        }
        let head_dim = match (f.opt_usize("head_dim")?, architecture) {
            (Some(e), _) => e,
            // Qwen3Config's own default when the field is absent.
            (None, Architecture::Qwen3) => 128,
            (None, Architecture::Qwen2 | Architecture::Llama) => {
                if hidden_size % num_attention_heads != 0 {
                    return Err(f.err(
                        "num_attention_heads",
                        format!(
                            "does not divide hidden_size ({hidden_size}) and no head_dim is set"
                        ),
                    ));
                }
                hidden_size / num_attention_heads
            }
        };
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(f.err(
                "head_dim",
                format!("must be even and positive for RoPE, got {head_dim}"),
            ));
        }
        let max_position_embeddings = f.usize("max_position_embeddings")?;
        let rope_theta = rope_theta(&f)?;
        check_sliding_window(&f, max_position_embeddings)?;

        let (attention_bias, o_bias, mlp_bias, qk_norm) = biases_and_norms(&f, architecture)?;
        let stored_dtype = stored_dtype(&f)?;
        let vocab_size = f.usize("vocab_size")?;
        let cfg = Self {
            architecture,
            vocab_size,
            hidden_size,
            intermediate_size: f.usize("intermediate_size")?,
            num_hidden_layers: f.usize("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: f.opt_f64("rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            max_position_embeddings,
            tie_word_embeddings: f.opt_bool("tie_word_embeddings")?.unwrap_or(false),
            attention_bias,
            o_bias,
            mlp_bias,
            qk_norm,
            bos_token_id: f.opt_token_id("bos_token_id")?,
            eos_token_ids: f.token_ids("eos_token_id")?,
            pad_token_id: f.opt_token_id("pad_token_id")?,
            stored_dtype,
        };
        for (field, id) in [
            ("bos_token_id", cfg.bos_token_id),
            ("pad_token_id", cfg.pad_token_id),
        ]
        .into_iter()
        .chain(cfg.eos_token_ids.iter().map(|&e| ("eos_token_id", Some(e))))
        {
            if id.is_some_and(|id| id as usize >= vocab_size) {
                return Err(f.err(
                    field,
                    format!("{id:?} is not below vocab_size ({vocab_size})"),
                ));
            }
        }
        Ok(cfg)
    }

    /// config.json in transformers-4 keys (top-level `rope_theta`, `torch_dtype`), which
    /// transformers 5 and vLLM also read.
    pub fn to_hf_json(&self) -> serde_json::Value {
        use serde_json::json;
        let mut v = json!({
            "architectures": [self.architecture.hf_class()],
            "model_type": self.architecture.model_type(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": null,
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_dropout": 0.0,
            "initializer_range": 0.02,
            "use_cache": true,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": match self.eos_token_ids.as_slice() {
                [] => serde_json::Value::Null,
                [one] => json!(one),
                many => json!(many),
            },
            "pad_token_id": self.pad_token_id,
            "torch_dtype": self.stored_dtype.hf_name(),
        });
        let obj = v.as_object_mut().expect("built as an object");
        match self.architecture {
            Architecture::Qwen2 => {
                obj.insert("use_sliding_window".into(), json!(false));
                obj.insert("sliding_window".into(), serde_json::Value::Null);
                obj.insert("max_window_layers".into(), json!(self.num_hidden_layers));
            }
            Architecture::Qwen3 => {
                obj.insert("attention_bias".into(), json!(self.attention_bias));
                obj.insert("use_sliding_window".into(), json!(false));
                obj.insert("sliding_window".into(), serde_json::Value::Null);
                obj.insert("max_window_layers".into(), json!(self.num_hidden_layers));
            }
            Architecture::Llama => {
                obj.insert("attention_bias".into(), json!(self.attention_bias));
                obj.insert("mlp_bias".into(), json!(self.mlp_bias));
                obj.insert("pretraining_tp".into(), json!(1));
            }
        }
        v
    }
}

/// (q/k/v bias, o bias, MLP bias, q/k norm) of the architecture and its options.
fn biases_and_norms(f: &Fields, architecture: Architecture) -> Result<(bool, bool, bool, bool)> {
    Ok(match architecture {
        // Qwen2 always has q/k/v bias and nothing else.
        Architecture::Qwen2 => (true, false, false, false),
        Architecture::Qwen3 => {
            let b = f.opt_bool("attention_bias")?.unwrap_or(false);
            (b, b, false, true)
        }
        Architecture::Llama => {
            let b = f.opt_bool("attention_bias")?.unwrap_or(false);
            (b, b, f.opt_bool("mlp_bias")?.unwrap_or(false), false)
        }
    })
}

/// The stored dtype: transformers 5's `dtype` or transformers 4's `torch_dtype`.
fn stored_dtype(f: &Fields) -> Result<StoredDtype> {
    Ok(match f.opt_str("dtype")?.or(f.opt_str("torch_dtype")?) {
        None | Some("float32") => StoredDtype::F32,
        Some("bfloat16") => StoredDtype::Bf16,
        Some("float16") => StoredDtype::F16,
        Some(other) => {
            let field = if f.get("dtype").is_some() {
                "dtype"
            } else {
                "torch_dtype"
            };
            return Err(f.err(field, format!("unknown dtype `{other}`")));
        }
    })
}

/// From `architectures[0]`, else `model_type`; the two must agree when both are present.
fn architecture(f: &Fields) -> Result<Architecture> {
    let unsupported = |message: String| Error::Unsupported {
        path: f.path.into(),
        message,
    };
    let from_class = match f.get("architectures") {
        None => None,
        Some(serde_json::Value::Array(items)) => match items.first() {
            None => None,
            Some(serde_json::Value::String(class)) => Some(match class.as_str() {
                "Qwen2ForCausalLM" => Architecture::Qwen2,
                "Qwen3ForCausalLM" => Architecture::Qwen3,
                "LlamaForCausalLM" => Architecture::Llama,
                other => {
                    return Err(unsupported(format!(
                        "architecture `{other}` (aha implements Qwen2ForCausalLM, \
                         Qwen3ForCausalLM, LlamaForCausalLM)"
                    )))
                }
            }),
            Some(v) => return Err(f.err("architectures", format!("expected strings, got {v}"))),
        },
        Some(v) => return Err(f.err("architectures", format!("expected a list, got {v}"))),
    };
    let from_type = match f.opt_str("model_type")? {
        None => None,
        Some("qwen2") => Some(Architecture::Qwen2),
        Some("qwen3") => Some(Architecture::Qwen3),
        Some("llama") => Some(Architecture::Llama),
        Some(other) => {
            return Err(unsupported(format!(
                "model_type `{other}` (aha implements qwen2, qwen3, llama)"
            )))
        }
    };
    match (from_class, from_type) {
        (Some(a), Some(b)) if a != b => Err(f.err(
            "model_type",
            format!(
                "`{}` disagrees with architectures `{}`",
                b.model_type(),
                a.hf_class()
            ),
        )),
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => Err(f.err("architectures", "missing (and no model_type)")),
    }
}

/// RoPE base from transformers 5's `rope_parameters` or transformers 4's `rope_theta` +
/// `rope_scaling`. Only the plain ("default") rotary embedding is implemented.
fn rope_theta(f: &Fields) -> Result<f64> {
    let mut theta = f.opt_f64("rope_theta")?;
    for field in ["rope_parameters", "rope_scaling"] {
        let Some(params) = f.get(field) else { continue };
        let Some(obj) = params.as_object() else {
            return Err(f.err(field, format!("expected an object, got {params}")));
        };
        let kind = obj.get("rope_type").or_else(|| obj.get("type"));
        match kind.map(|k| k.as_str()) {
            None | Some(Some("default")) => {}
            Some(Some(other)) => {
                return Err(Error::Unsupported {
                    path: f.path.into(),
                    message: format!(
                        "{field}.rope_type `{other}`: only the default rotary embedding is \
                         implemented (no RoPE scaling)"
                    ),
                })
            }
            Some(None) => {
                return Err(f.err(&format!("{field}.rope_type"), "expected a string"));
            }
        }
        if let Some(t) = obj.get("rope_theta").filter(|t| !t.is_null()) {
            let t = t.as_f64().ok_or_else(|| {
                f.err(
                    &format!("{field}.rope_theta"),
                    format!("expected a number, got {t}"),
                )
            })?;
            theta = Some(t);
        }
    }
    let theta = theta.unwrap_or(10_000.0);
    if !(theta > 1.0 && theta.is_finite()) {
        return Err(f.err(
            "rope_theta",
            format!("must be a finite number above 1, got {theta}"),
        ));
    }
    Ok(theta)
}

/// Sliding-window attention is not implemented: refuse configs where it would change results.
fn check_sliding_window(f: &Fields, max_positions: usize) -> Result<()> {
    let window = f.opt_usize("sliding_window")?;
    let narrower = window.is_some_and(|w| w < max_positions);
    let mut in_use = f.opt_bool("use_sliding_window")?.unwrap_or(false) && narrower;
    if in_use {
        // Qwen2/3 apply the window only from layer `max_window_layers` on.
        let layers = f.usize("num_hidden_layers")?;
        in_use = f.opt_usize("max_window_layers")?.unwrap_or(0) < layers;
    }
    if let Some(types) = f.get("layer_types").and_then(|t| t.as_array()) {
        in_use |= narrower
            && types
                .iter()
                .any(|t| t.as_str() == Some("sliding_attention"));
    }
    if in_use {
        return Err(Error::Unsupported {
            path: f.path.into(),
            message: format!(
                "sliding-window attention (sliding_window {} < max_position_embeddings \
                 {max_positions}) is not implemented",
                window.unwrap_or(0)
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T5: &str = r#"{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "vocab_size": 100, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
        "rms_norm_eps": 1e-5, "rope_parameters": {"rope_type": "default", "rope_theta": 5e5},
        "dtype": "bfloat16", "eos_token_id": [3, 4], "tie_word_embeddings": true,
        "layer_types": ["full_attention", "full_attention"], "sliding_window": null}"#;

    fn parse(text: &str) -> Result<ModelConfig> {
        ModelConfig::from_hf_json(text, Path::new("config.json"))
    }

    #[test]
    fn transformers_4_and_5_spellings_parse_the_same() {
        let t5 = parse(T5).unwrap();
        let t4 = T5
            .replace(
                r#""rope_parameters": {"rope_type": "default", "rope_theta": 5e5}"#,
                r#""rope_theta": 5e5, "rope_scaling": null"#,
            )
            .replace(r#""dtype""#, r#""torch_dtype""#);
        assert_eq!(parse(&t4).unwrap(), t5);
        assert_eq!(t5.rope_theta, 5e5);
        assert_eq!(t5.stored_dtype, StoredDtype::Bf16);
        assert_eq!(t5.eos_token_ids, vec![3, 4]);
        assert_eq!(t5.head_dim, 8);
        assert!(t5.attention_bias && !t5.o_bias && !t5.qk_norm);
    }

    #[test]
    fn to_hf_json_round_trips_every_architecture() {
        for arch in [
            Architecture::Qwen2,
            Architecture::Qwen3,
            Architecture::Llama,
        ] {
            let mut cfg = parse(T5).unwrap();
            cfg.architecture = arch;
            (cfg.attention_bias, cfg.o_bias, cfg.mlp_bias, cfg.qk_norm) = match arch {
                Architecture::Qwen2 => (true, false, false, false),
                Architecture::Qwen3 => (true, true, false, true),
                Architecture::Llama => (true, true, true, false),
            };
            cfg.head_dim = 16; // explicit, not hidden / heads
            let text = cfg.to_hf_json().to_string();
            assert_eq!(parse(&text).unwrap(), cfg, "{arch:?}");
        }
    }

    #[test]
    fn qwen3_without_head_dim_uses_its_default() {
        let text = T5
            .replace("Qwen2ForCausalLM", "Qwen3ForCausalLM")
            .replace("\"qwen2\"", "\"qwen3\"");
        assert_eq!(parse(&text).unwrap().head_dim, 128);
    }

    #[test]
    fn disagreeing_architecture_and_model_type_is_an_error() {
        let e = parse(&T5.replace("\"qwen2\"", "\"llama\"")).unwrap_err();
        assert!(e.to_string().contains("field `model_type`"), "{e}");
    }
}
