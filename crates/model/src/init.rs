//! Random-initialised checkpoints for training from scratch: size presets, seeded weights
//! like HF's `_init_weights` (normal(0, 0.02), RMSNorm weights 1, biases 0), and a byte-level
//! BPE tokenizer with ChatML and reasoning special tokens.
//!
//! The tokenizer's merges are learned from a small built-in corpus (arithmetic worked in columns,
//! plus plain English), so a fresh tokenizer suits the demo task without any download. It does
//! not replace a real pretrained tokenizer.

use std::collections::HashSet;
use std::path::Path;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::AddedToken;

use crate::config::{Qwen2Sizes, StoredDtype};
use crate::decoder::weight_shapes;
use crate::load::GenerationConfig;
use crate::save::save_checkpoint;
use crate::tokenizer::{Tokenizer, TokenizerConfig};
use crate::{Architecture, Error, Model, ModelConfig, Result};

/// Special tokens of every aha tokenizer, with fixed ids 0..7 in this order.
pub const SPECIAL_TOKENS: [&str; 7] = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
];

/// Smallest vocabulary a byte-level tokenizer can have: 256 bytes plus the special tokens.
pub const MIN_VOCAB: usize = 256 + SPECIAL_TOKENS.len();

/// ChatML, as Qwen2.5 uses (without its tool-calling branch or default system prompt).
pub const CHATML_TEMPLATE: &str = "{%- for message in messages %}\
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}\
{%- endfor %}\
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/// Model sizes aha knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// d 64, 2 layers, 4/2 heads, vocab 320, tied: for tests.
    Tiny,
    /// d 256, 4 layers, 8/2 heads, SwiGLU 688, vocab 1024, untied: the benchmark shape.
    Reference,
    /// d 512, 8 layers, 8/2 heads, SwiGLU 1408, vocab 4096, tied.
    Small,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Tiny, Preset::Reference, Preset::Small];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Reference => "reference",
            Preset::Small => "small",
        }
    }

    /// The preset's Qwen2-style config (token ids are filled in by [`init_checkpoint`]).
    pub fn config(self) -> ModelConfig {
        // (D, layers, H, K, SwiGLU, V, tied)
        let (d, layers, h, k, ffn, vocab, tied) = match self {
            Preset::Tiny => (64, 2, 4, 2, 176, 320, true),
            Preset::Reference => (256, 4, 8, 2, 688, 1024, false),
            Preset::Small => (512, 8, 8, 2, 1408, 4096, true),
        };
        ModelConfig {
            tie_word_embeddings: tied,
            max_position_embeddings: 2048,
            ..ModelConfig::qwen2(Qwen2Sizes {
                vocab_size: vocab,
                hidden_size: d,
                intermediate_size: ffn,
                num_hidden_layers: layers,
                num_attention_heads: h,
                num_key_value_heads: k,
                max_position_embeddings: 2048,
            })
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| Error::Input(format!("unknown preset `{s}` (tiny, reference, small)")))
    }
}

/// Explicit sizes that override a preset's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SizeOverrides {
    pub architecture: Option<Architecture>,
    pub hidden_size: Option<usize>,
    pub num_hidden_layers: Option<usize>,
    pub num_attention_heads: Option<usize>,
    pub num_key_value_heads: Option<usize>,
    pub intermediate_size: Option<usize>,
    pub vocab_size: Option<usize>,
    pub max_position_embeddings: Option<usize>,
    pub tie_word_embeddings: Option<bool>,
}

/// `preset` with `overrides` applied, checked for consistency.
pub fn sized_config(preset: Preset, overrides: &SizeOverrides) -> Result<ModelConfig> {
    let mut c = preset.config();
    let o = overrides;
    if let Some(a) = o.architecture {
        c.architecture = a;
        (c.attention_bias, c.o_bias, c.qk_norm) = match a {
            Architecture::Qwen2 => (true, false, false),
            Architecture::Qwen3 => (false, false, true),
            Architecture::Llama => (false, false, false),
        };
    }
    c.hidden_size = o.hidden_size.unwrap_or(c.hidden_size);
    c.num_hidden_layers = o.num_hidden_layers.unwrap_or(c.num_hidden_layers);
    c.num_attention_heads = o.num_attention_heads.unwrap_or(c.num_attention_heads);
    c.num_key_value_heads = o.num_key_value_heads.unwrap_or(c.num_key_value_heads);
    c.intermediate_size = o.intermediate_size.unwrap_or(c.intermediate_size);
    c.vocab_size = o.vocab_size.unwrap_or(c.vocab_size);
    c.max_position_embeddings = o
        .max_position_embeddings
        .unwrap_or(c.max_position_embeddings);
    c.tie_word_embeddings = o.tie_word_embeddings.unwrap_or(c.tie_word_embeddings);
    let bad = |m: String| Err(Error::Input(m));
    if [
        c.hidden_size,
        c.num_hidden_layers,
        c.num_attention_heads,
        c.intermediate_size,
    ]
    .contains(&0)
    {
        return bad("sizes must be positive".into());
    }
    if !c.hidden_size.is_multiple_of(c.num_attention_heads) {
        return bad(format!(
            "hidden size {} is not a multiple of the {} attention heads",
            c.hidden_size, c.num_attention_heads
        ));
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
    if !c.head_dim.is_multiple_of(2) {
        return bad(format!("head dim {} must be even for RoPE", c.head_dim));
    }
    if c.num_key_value_heads == 0 || !c.num_attention_heads.is_multiple_of(c.num_key_value_heads) {
        return bad(format!(
            "{} key-value heads do not divide the {} attention heads",
            c.num_key_value_heads, c.num_attention_heads
        ));
    }
    if c.vocab_size < MIN_VOCAB {
        return bad(format!(
            "vocab size {} is below {MIN_VOCAB} (256 bytes + {} special tokens)",
            c.vocab_size,
            SPECIAL_TOKENS.len()
        ));
    }
    Ok(c)
}

/// A trainable model with HF-style random weights: normal(0, 0.02) matrices and embeddings,
/// RMSNorm weights 1, biases 0. Same `cfg` and `seed`, same weights.
pub fn random_model(cfg: &ModelConfig, seed: u64, device: &Device) -> Result<Model> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = std::collections::BTreeMap::new();
    for (name, shape) in weight_shapes(cfg) {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            (0..n).map(|_| 0.02 * standard_normal(&mut rng)).collect()
        };
        tensors.insert(name, Tensor::from_vec(data, shape, device)?);
    }
    Model::from_tensors(cfg, &tensors, true)
}

/// Box–Muller: one normal(0, 1) sample from two uniforms, `u1` in [ε, 1) so ln is finite.
///
/// Kept by hand rather than `rand_distr::StandardNormal` (a ziggurat, other draws from the same
/// stream): this is the exact sequence `aha demo` was measured with, and its published numbers
/// (README, issue 15) are reproducible only with the same weights.
fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// A byte-level BPE tokenizer (GPT-2 pre-tokenizer and decoder) whose 7 special tokens take ids
/// 0..7 and whose merges are learned on the built-in corpus until it has at most `vocab_size`
/// tokens. Its config carries a ChatML template, eos `<|im_end|>`, pad `<|endoftext|>`.
pub fn byte_level_tokenizer(vocab_size: usize) -> Result<Tokenizer> {
    let err = |message: String| Error::Tokenizer {
        path: "<built-in tokenizer>".into(),
        message,
    };
    if vocab_size < MIN_VOCAB {
        return Err(err(format!("vocab size {vocab_size} is below {MIN_VOCAB}")));
    }
    let mut tok = tokenizers::Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(ByteLevel::new(false, true, true)));
    let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
    let mut trainer: TrainerWrapper = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .initial_alphabet(alphabet)
        .special_tokens(
            SPECIAL_TOKENS
                .iter()
                .map(|t| AddedToken::from(*t, true))
                .collect(),
        )
        .build()
        .into();
    let corpus = builtin_corpus();
    tok.train(&mut trainer, corpus.iter())
        .map_err(|e| err(format!("training merges: {e}")))?;
    let config = TokenizerConfig {
        chat_template: Some(CHATML_TEMPLATE.to_string()),
        eos_token: Some("<|im_end|>".into()),
        pad_token: Some("<|endoftext|>".into()),
        bos_token: None,
        add_bos_token: Some(false),
        raw: serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": 131072,
            "additional_special_tokens": &SPECIAL_TOKENS[1..],
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
    };
    Tokenizer::from_parts(tok, config)
}

/// Lines the tokenizer's merges are learned from: column-wise addition in the demo's format and
/// a little English. Deterministic.
fn builtin_corpus() -> Vec<String> {
    const ENGLISH: &str = "The model thinks step by step before it answers. To add two \
        numbers, add the digits of each column from the right, and carry one when a column \
        sums to ten or more. The answer is the sum. Reinforcement learning rewards a correct \
        answer and the model learns to reason. Let me check the result again: it is right.";
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut lines: Vec<String> = ENGLISH.split(". ").map(|s| format!("{s}.")).collect();
    for _ in 0..400 {
        let a: u32 = rng.gen_range(0..10_000);
        let b: u32 = rng.gen_range(0..10_000);
        let mut work = Vec::new();
        let (mut x, mut y, mut carry) = (a, b, 0);
        while x > 0 || y > 0 {
            let s = x % 10 + y % 10 + carry;
            work.push(format!("{}+{}+{carry}={s}", x % 10, y % 10));
            carry = s / 10;
            (x, y) = (x / 10, y / 10);
        }
        lines.push(format!(
            "Q:{a}+{b}= {} so the answer is {}",
            work.join(", "),
            a + b
        ));
    }
    lines
}

/// Write a random checkpoint for `cfg` to `out`: weights from `seed`, a fresh byte-level
/// tokenizer sized to `cfg.vocab_size`, EOS/pad ids from that tokenizer. Returns the config
/// written.
pub fn init_checkpoint(
    out: &Path,
    cfg: &ModelConfig,
    seed: u64,
    dtype: StoredDtype,
) -> Result<ModelConfig> {
    let tokenizer = byte_level_tokenizer(cfg.vocab_size)?;
    let im_end = tokenizer.token_to_id("<|im_end|>");
    let eot = tokenizer.token_to_id("<|endoftext|>");
    let mut cfg = cfg.clone();
    cfg.eos_token_ids = im_end.into_iter().collect();
    cfg.pad_token_id = eot;
    cfg.bos_token_id = None;
    cfg.stored_dtype = dtype;
    let generation = GenerationConfig {
        eos_token_ids: im_end.into_iter().chain(eot).collect(),
        pad_token_id: eot,
        ..Default::default()
    };
    let model = random_model(&cfg, seed, &Device::Cpu)?;
    save_checkpoint(&model, &tokenizer, Some(&generation), out, dtype)?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_round_trips_text_and_keeps_special_ids() {
        let tok = byte_level_tokenizer(320).unwrap();
        assert!(
            tok.vocab_size() <= 320 && tok.vocab_size() > MIN_VOCAB,
            "{}",
            tok.vocab_size()
        );
        for (i, t) in SPECIAL_TOKENS.iter().enumerate() {
            assert_eq!(tok.token_to_id(t), Some(i as u32));
        }
        let text = "<|im_start|>user\nQ:4821+5377= café 数学<|im_end|>\n<think>1+7=8</think>";
        let ids = tok.encode(text, true).unwrap();
        assert!(ids.contains(&3) && ids.contains(&1));
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
        // Merges were learned: digits-and-operators text is shorter than its bytes.
        let q = "Q:4821+5377= 1+7+0=8, 2+7+0=9";
        assert!(tok.encode(q, false).unwrap().len() < q.len());
        assert_eq!(tok.eos_token_ids(), vec![2]);
    }

    #[test]
    fn random_model_is_deterministic_and_hf_initialised() {
        let cfg = Preset::Tiny.config();
        let a = random_model(&cfg, 7, &Device::Cpu).unwrap();
        let b = random_model(&cfg, 7, &Device::Cpu).unwrap();
        let c = random_model(&cfg, 8, &Device::Cpu).unwrap();
        let w = |m: &Model| -> Vec<f32> {
            m.tensors()["model.layers.0.self_attn.q_proj.weight"]
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        assert_eq!(w(&a), w(&b));
        assert_ne!(w(&a), w(&c));
        let v = w(&a);
        let std = (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
        assert!((std - 0.02).abs() < 0.002, "std {std}");
        assert_eq!(a.vars().len(), weight_shapes(&cfg).len());
    }

    #[test]
    fn overrides_are_checked() {
        let o = SizeOverrides {
            num_attention_heads: Some(3),
            ..Default::default()
        };
        assert!(sized_config(Preset::Tiny, &o).is_err());
        let o = SizeOverrides {
            hidden_size: Some(96),
            num_attention_heads: Some(6),
            num_key_value_heads: Some(3),
            ..Default::default()
        };
        let c = sized_config(Preset::Tiny, &o).unwrap();
        assert_eq!((c.head_dim, c.num_key_value_heads), (16, 3));
        let o = SizeOverrides {
            vocab_size: Some(100),
            ..Default::default()
        };
        assert!(sized_config(Preset::Tiny, &o)
            .unwrap_err()
            .to_string()
            .contains("263"));
    }
}
