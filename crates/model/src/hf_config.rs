//! `config.json` of a Hugging Face checkpoint: [`HfConfig`] mirrors the file as transformers 4
//! or 5 writes it, [`HfConfig::validate`] turns it into the runtime [`ModelConfig`], and
//! [`ModelConfig::to_hf_json`] writes one back.
//!
//! transformers 5 renamed some fields (`torch_dtype` → `dtype`, `rope_theta` + `rope_scaling` →
//! `rope_parameters`) and reads both spellings. They are separate fields here rather than
//! `#[serde(alias)]`: a file may carry both (transformers 5 keeps `type` beside `rope_type` in
//! `rope_parameters`), and an alias would refuse it as a duplicate.

use std::path::Path;

use serde::Deserialize;

use crate::config::{Architecture, ModelConfig, StoredDtype};
use crate::hf_json::{read_json, token_ids};
use crate::{Error, Result};

/// The fields of `config.json` aha reads; every one optional, as in the file (transformers
/// writes `null` for unset options). The rest of the file is ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HfConfig {
    pub architectures: Option<Vec<String>>,
    pub model_type: Option<String>,
    pub vocab_size: Option<usize>,
    pub hidden_size: Option<usize>,
    pub intermediate_size: Option<usize>,
    pub num_hidden_layers: Option<usize>,
    pub num_attention_heads: Option<usize>,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub hidden_act: Option<String>,
    pub max_position_embeddings: Option<usize>,
    pub rms_norm_eps: Option<f64>,
    /// transformers 4; transformers 5 moved it into `rope_parameters`.
    pub rope_theta: Option<f64>,
    /// transformers 4's RoPE scaling options.
    pub rope_scaling: Option<RopeParameters>,
    /// transformers 5's RoPE options, `rope_theta` included.
    pub rope_parameters: Option<RopeParameters>,
    pub sliding_window: Option<usize>,
    pub use_sliding_window: Option<bool>,
    pub max_window_layers: Option<usize>,
    /// transformers 5: `full_attention` or `sliding_attention` per layer.
    pub layer_types: Option<Vec<String>>,
    pub tie_word_embeddings: Option<bool>,
    pub attention_bias: Option<bool>,
    pub mlp_bias: Option<bool>,
    pub bos_token_id: Option<u32>,
    /// One id or a list.
    #[serde(with = "token_ids")]
    pub eos_token_id: Vec<u32>,
    pub pad_token_id: Option<u32>,
    /// transformers 5.
    pub dtype: Option<HfDtype>,
    /// transformers 4.
    pub torch_dtype: Option<HfDtype>,
}

/// `rope_scaling` (transformers 4) or `rope_parameters` (transformers 5).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RopeParameters {
    pub rope_type: Option<String>,
    /// The older spelling of `rope_type`.
    #[serde(rename = "type")]
    pub legacy_type: Option<String>,
    pub rope_theta: Option<f64>,
}

/// The dtype names of config.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HfDtype {
    #[serde(rename = "float32")]
    F32,
    #[serde(rename = "bfloat16")]
    Bf16,
    #[serde(rename = "float16")]
    F16,
}

impl From<HfDtype> for StoredDtype {
    fn from(d: HfDtype) -> Self {
        match d {
            HfDtype::F32 => StoredDtype::F32,
            HfDtype::Bf16 => StoredDtype::Bf16,
            HfDtype::F16 => StoredDtype::F16,
        }
    }
}

impl ModelConfig {
    /// Read and validate a Hugging Face `config.json`.
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        read_json::<HfConfig>(path)?.validate(path)
    }
}

/// The q/k/v/o/MLP biases and q/k norm an architecture and its options give.
struct Biases {
    attention: bool,
    o: bool,
    mlp: bool,
    qk_norm: bool,
}

/// Head counts and size: (`H`, `K`, `E`).
struct Heads {
    query: usize,
    key_value: usize,
    dim: usize,
}

impl HfConfig {
    /// The runtime config, or an error naming `path` and the field at fault: a missing size, an
    /// inconsistent head layout, a token id outside the vocabulary, or an option aha does not
    /// implement (another activation, RoPE scaling, sliding-window attention).
    pub fn validate(&self, path: &Path) -> Result<ModelConfig> {
        let v = Validator { cfg: self, path };
        let architecture = v.architecture()?;
        v.check_activation()?;
        let hidden_size = v.required("hidden_size", self.hidden_size)?;
        let heads = v.heads(architecture, hidden_size)?;
        let max_position_embeddings =
            v.required("max_position_embeddings", self.max_position_embeddings)?;
        let rope_theta = v.rope_theta()?;
        v.check_sliding_window(max_position_embeddings)?;
        let biases = self.biases(architecture);
        let vocab_size = v.required("vocab_size", self.vocab_size)?;
        let cfg = ModelConfig {
            architecture,
            vocab_size,
            hidden_size,
            intermediate_size: v.required("intermediate_size", self.intermediate_size)?,
            num_hidden_layers: v.required("num_hidden_layers", self.num_hidden_layers)?,
            num_attention_heads: heads.query,
            num_key_value_heads: heads.key_value,
            head_dim: heads.dim,
            rms_norm_eps: self.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            max_position_embeddings,
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(false),
            attention_bias: biases.attention,
            o_bias: biases.o,
            mlp_bias: biases.mlp,
            qk_norm: biases.qk_norm,
            bos_token_id: self.bos_token_id,
            eos_token_ids: self.eos_token_id.clone(),
            pad_token_id: self.pad_token_id,
            stored_dtype: self
                .dtype
                .or(self.torch_dtype)
                .map_or(StoredDtype::F32, Into::into),
        };
        v.check_token_ids(&cfg)?;
        Ok(cfg)
    }

    fn biases(&self, architecture: Architecture) -> Biases {
        let attention = self.attention_bias.unwrap_or(false);
        match architecture {
            // Qwen2 always has q/k/v bias and nothing else.
            Architecture::Qwen2 => Biases {
                attention: true,
                o: false,
                mlp: false,
                qk_norm: false,
            },
            Architecture::Qwen3 => Biases {
                attention,
                o: attention,
                mlp: false,
                qk_norm: true,
            },
            Architecture::Llama => Biases {
                attention,
                o: attention,
                mlp: self.mlp_bias.unwrap_or(false),
                qk_norm: false,
            },
        }
    }
}

/// The checks of [`HfConfig::validate`], each naming the file.
struct Validator<'a> {
    cfg: &'a HfConfig,
    path: &'a Path,
}

impl Validator<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> Error {
        Error::Config {
            path: self.path.into(),
            field: field.into(),
            message: message.into(),
        }
    }

    fn unsupported(&self, message: String) -> Error {
        Error::Unsupported {
            path: self.path.into(),
            message,
        }
    }

    fn required(&self, field: &str, value: Option<usize>) -> Result<usize> {
        value.ok_or_else(|| self.err(field, "missing"))
    }

    /// From `architectures[0]`, else `model_type`; the two must agree when both are present.
    fn architecture(&self) -> Result<Architecture> {
        let from_class = match self.cfg.architectures.as_deref().and_then(|a| a.first()) {
            None => None,
            Some(class) => Some(match class.as_str() {
                "Qwen2ForCausalLM" => Architecture::Qwen2,
                "Qwen3ForCausalLM" => Architecture::Qwen3,
                "LlamaForCausalLM" => Architecture::Llama,
                other => {
                    return Err(self.unsupported(format!(
                        "architecture `{other}` (aha implements Qwen2ForCausalLM, \
                         Qwen3ForCausalLM, LlamaForCausalLM)"
                    )))
                }
            }),
        };
        let from_type = match self.cfg.model_type.as_deref() {
            None => None,
            Some("qwen2") => Some(Architecture::Qwen2),
            Some("qwen3") => Some(Architecture::Qwen3),
            Some("llama") => Some(Architecture::Llama),
            Some(other) => {
                return Err(self.unsupported(format!(
                    "model_type `{other}` (aha implements qwen2, qwen3, llama)"
                )))
            }
        };
        match (from_class, from_type) {
            (Some(a), Some(b)) if a != b => Err(self.err(
                "model_type",
                format!(
                    "`{}` disagrees with architectures `{}`",
                    b.model_type(),
                    a.hf_class()
                ),
            )),
            (Some(a), _) | (None, Some(a)) => Ok(a),
            (None, None) => Err(self.err("architectures", "missing (and no model_type)")),
        }
    }

    fn check_activation(&self) -> Result<()> {
        match self.cfg.hidden_act.as_deref() {
            None | Some("silu") => Ok(()),
            Some(act) => Err(self.unsupported(format!(
                "hidden_act `{act}` (aha implements SwiGLU with silu)"
            ))),
        }
    }

    /// `H` and `K` must be positive with `K` dividing `H`; `E` is `head_dim`, or Qwen3's default
    /// of 128, or `D / H`. RoPE needs an even `E`.
    fn heads(&self, architecture: Architecture, hidden_size: usize) -> Result<Heads> {
        let query = self.required("num_attention_heads", self.cfg.num_attention_heads)?;
        let key_value = self.cfg.num_key_value_heads.unwrap_or(query);
        if query == 0 || hidden_size == 0 {
            return Err(self.err(
                "num_attention_heads",
                "hidden_size and heads must be positive",
            ));
        }
        if key_value == 0 || query % key_value != 0 {
            return Err(self.err(
                "num_key_value_heads",
                format!("{key_value} does not divide num_attention_heads ({query})"),
            ));
        }
        let dim = match (self.cfg.head_dim, architecture) {
            (Some(e), _) => e,
            // Qwen3Config's own default when the field is absent.
            (None, Architecture::Qwen3) => 128,
            (None, Architecture::Qwen2 | Architecture::Llama) => {
                if !hidden_size.is_multiple_of(query) {
                    return Err(self.err(
                        "num_attention_heads",
                        format!(
                            "does not divide hidden_size ({hidden_size}) and no head_dim is set"
                        ),
                    ));
                }
                hidden_size / query
            }
        };
        if dim == 0 || dim % 2 != 0 {
            return Err(self.err(
                "head_dim",
                format!("must be even and positive for RoPE, got {dim}"),
            ));
        }
        Ok(Heads {
            query,
            key_value,
            dim,
        })
    }

    /// RoPE base from transformers 5's `rope_parameters` or transformers 4's `rope_theta` +
    /// `rope_scaling`. Only the plain ("default") rotary embedding is implemented.
    fn rope_theta(&self) -> Result<f64> {
        let mut theta = self.cfg.rope_theta;
        for (field, params) in [
            ("rope_parameters", &self.cfg.rope_parameters),
            ("rope_scaling", &self.cfg.rope_scaling),
        ] {
            let Some(params) = params else { continue };
            let kind = params
                .rope_type
                .as_deref()
                .or(params.legacy_type.as_deref());
            if let Some(other) = kind.filter(|&k| k != "default") {
                return Err(self.unsupported(format!(
                    "{field}.rope_type `{other}`: only the default rotary embedding is \
                     implemented (no RoPE scaling)"
                )));
            }
            theta = params.rope_theta.or(theta);
        }
        let theta = theta.unwrap_or(10_000.0);
        if !(theta > 1.0 && theta.is_finite()) {
            return Err(self.err(
                "rope_theta",
                format!("must be a finite number above 1, got {theta}"),
            ));
        }
        Ok(theta)
    }

    /// Sliding-window attention is not implemented: refuse configs where it would change results.
    fn check_sliding_window(&self, max_positions: usize) -> Result<()> {
        let c = self.cfg;
        let narrower = c.sliding_window.is_some_and(|w| w < max_positions);
        let mut in_use = c.use_sliding_window.unwrap_or(false) && narrower;
        if in_use {
            // Qwen2/3 apply the window only from layer `max_window_layers` on.
            let layers = self.required("num_hidden_layers", c.num_hidden_layers)?;
            in_use = c.max_window_layers.unwrap_or(0) < layers;
        }
        if let Some(types) = &c.layer_types {
            in_use |= narrower && types.iter().any(|t| t == "sliding_attention");
        }
        if in_use {
            return Err(self.unsupported(format!(
                "sliding-window attention (sliding_window {} < max_position_embeddings \
                 {max_positions}) is not implemented",
                c.sliding_window.unwrap_or(0)
            )));
        }
        Ok(())
    }

    /// Every special token id must index the embedding.
    fn check_token_ids(&self, cfg: &ModelConfig) -> Result<()> {
        let vocab_size = cfg.vocab_size;
        let ids = [
            ("bos_token_id", cfg.bos_token_id),
            ("pad_token_id", cfg.pad_token_id),
        ]
        .into_iter()
        .chain(cfg.eos_token_ids.iter().map(|&e| ("eos_token_id", Some(e))));
        for (field, id) in ids {
            if id.is_some_and(|id| id as usize >= vocab_size) {
                return Err(self.err(
                    field,
                    format!("{id:?} is not below vocab_size ({vocab_size})"),
                ));
            }
        }
        Ok(())
    }
}

impl ModelConfig {
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
        let extra = match self.architecture {
            Architecture::Qwen2 => json!({
                "use_sliding_window": false,
                "sliding_window": null,
                "max_window_layers": self.num_hidden_layers,
            }),
            Architecture::Qwen3 => json!({
                "attention_bias": self.attention_bias,
                "use_sliding_window": false,
                "sliding_window": null,
                "max_window_layers": self.num_hidden_layers,
            }),
            Architecture::Llama => json!({
                "attention_bias": self.attention_bias,
                "mlp_bias": self.mlp_bias,
                "pretraining_tp": 1,
            }),
        };
        if let (Some(obj), serde_json::Value::Object(extra)) = (v.as_object_mut(), extra) {
            obj.extend(extra);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hf_json::parse_json;

    const T5: &str = r#"{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "vocab_size": 100, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
        "rms_norm_eps": 1e-5, "rope_parameters": {"rope_type": "default", "rope_theta": 5e5},
        "dtype": "bfloat16", "eos_token_id": [3, 4], "tie_word_embeddings": true,
        "layer_types": ["full_attention", "full_attention"], "sliding_window": null}"#;

    fn parse(text: &str) -> Result<ModelConfig> {
        let path = Path::new("config.json");
        parse_json::<HfConfig>(text, path)?.validate(path)
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

    /// As transformers 5.24 saves a config it loaded from a transformers-4 file: `dtype`,
    /// `rope_parameters` with both `type` and `rope_type`, and fields aha does not read.
    #[test]
    fn a_transformers_5_config_with_both_spellings_parses() {
        let text = T5
            .replace(
                r#""rope_parameters": {"rope_type": "default", "rope_theta": 5e5}"#,
                r#""rope_parameters": {"rope_type": "default", "type": "default",
                    "rope_theta": 5e5}, "torch_dtype": "float32", "transformers_version": "5.24.0",
                    "use_cache": true, "output_router_logits": false"#,
            )
            .replace(r#""eos_token_id": [3, 4]"#, r#""eos_token_id": 3"#);
        let cfg = parse(&text).unwrap();
        assert_eq!(cfg.rope_theta, 5e5);
        assert_eq!(
            cfg.stored_dtype,
            StoredDtype::Bf16,
            "dtype wins over torch_dtype"
        );
        assert_eq!(cfg.eos_token_ids, vec![3]);
    }

    #[test]
    fn eos_token_id_is_one_or_many_or_none() {
        for (eos, ids) in [("7", vec![7]), ("[7, 9]", vec![7, 9]), ("null", vec![])] {
            let text = T5.replace(
                r#""eos_token_id": [3, 4]"#,
                &format!(r#""eos_token_id": {eos}"#),
            );
            assert_eq!(parse(&text).unwrap().eos_token_ids, ids, "{eos}");
        }
        let text = T5.replace(r#""eos_token_id": [3, 4]"#, r#""eos_token_id": [3, 100]"#);
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains("field `eos_token_id`: Some(100) is not below vocab_size"),
            "{e}"
        );
    }

    #[test]
    fn a_wrongly_typed_field_names_the_file_the_field_and_the_line() {
        let text = T5.replace(r#""rope_theta": 5e5"#, r#""rope_theta": "big""#);
        let e = parse(&text).unwrap_err();
        assert!(matches!(e, Error::Config { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.starts_with("config.json: field `rope_parameters.rope_theta`: invalid type")
                && e.contains("line 4"),
            "{e}"
        );
        let e = parse(&T5.replace("bfloat16", "int8"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("field `dtype`: unknown variant `int8`"), "{e}");
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
