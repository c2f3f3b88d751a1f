//! The base model: a small Qwen2-style decoder, randomly initialised and pretrained on the mixed
//! corpus with a loss on every token — the demo's stand-in for a pretrained LM.
//!
//! The model is an ordinary aha model (HF names, saved as an HF checkpoint) over
//! `aha_model::char_tokenizer`; pretraining is [`aha_train::sft::SftTrainer`] with [`LossOn::All`]. Each step draws fresh documents from the
//! corpus stream (no epochs), sorted by length so the trainer's micro-batches pad little: think
//! documents are ~4× longer than direct ones.

use std::collections::{BTreeMap, HashSet};

use aha_model::char_tokenizer::{self, EOS};
use aha_model::config::StoredDtype;
use aha_model::tokenizer::Tokenizer;
use aha_model::{Architecture, Model, ModelConfig};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::DemoConfig;
use crate::corpus::{sample_example, CorpusMix};
use crate::task::Problem;
use crate::DemoError;
use aha_train::optim::{LrDecay, OptimConfig};
use aha_train::sft::{Example, LossOn, SftConfig, SftStepStats, SftTrainer};

/// The HF config of the demo model for `cfg`'s shape and task size.
pub fn model_config(cfg: &DemoConfig, eos_id: u32) -> ModelConfig {
    let m = &cfg.model;
    // Longest document: prompt `Q:a+b=` plus the longest response, with room to spare.
    let longest = 2 * cfg.digits + 4 + cfg.max_completion_tokens();
    ModelConfig {
        architecture: Architecture::Qwen2,
        vocab_size: char_tokenizer::vocabulary().len(),
        hidden_size: m.hidden_size,
        intermediate_size: m.intermediate_size,
        num_hidden_layers: m.layers,
        num_attention_heads: m.heads,
        num_key_value_heads: m.heads,
        head_dim: m.hidden_size / m.heads,
        rms_norm_eps: 1e-6,
        rope_theta: 10_000.0,
        max_position_embeddings: longest.next_multiple_of(64),
        tie_word_embeddings: true,
        attention_bias: true,
        o_bias: false,
        mlp_bias: false,
        qk_norm: false,
        bos_token_id: None,
        eos_token_ids: vec![eos_id],
        pad_token_id: Some(eos_id),
        stored_dtype: StoredDtype::F32,
    }
}

/// Random weights: matrices ~ N(0, 0.02²) (GPT-2's scale), biases 0, norm weights 1; drawn
/// from a ChaCha stream seeded with `seed`, so the same seed gives the same model.
pub fn init_model(cfg: &ModelConfig, seed: u64) -> Result<Model, DemoError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = BTreeMap::new();
    for (name, shape) in aha_model::decoder::weight_shapes(cfg) {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            (0..n).map(|_| 0.02 * standard_normal(&mut rng)).collect()
        };
        tensors.insert(name, Tensor::from_vec(data, shape, &Device::Cpu)?);
    }
    Ok(Model::from_tensors(cfg, &tensors, true)?)
}

/// One draw from N(0, 1) by Box–Muller.
fn standard_normal<R: Rng>(rng: &mut R) -> f32 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Pretraining state: the trainer and the corpus stream.
pub struct Pretrainer {
    trainer: SftTrainer,
    rng: ChaCha8Rng,
    tok: Tokenizer,
    eos: u32,
    digits: usize,
    batch_size: usize,
    mix: CorpusMix,
    skill_mix: CorpusMix,
    skill_steps: usize,
    steps_done: usize,
    held_out: HashSet<Problem>,
    /// Tokens trained on so far (padding excluded).
    pub tokens: usize,
}

impl Pretrainer {
    /// Starts pretraining `model` under `cfg`; `held_out` problems never appear in the corpus.
    pub fn new(
        model: Model,
        cfg: &DemoConfig,
        held_out: HashSet<Problem>,
    ) -> Result<Self, DemoError> {
        let p = &cfg.pretrain;
        let sft = SftConfig {
            optim: OptimConfig {
                lr: p.lr,
                warmup: p.warmup_steps,
                // Cosine to a tenth: the textbook phase runs near the peak rate, and the short
                // mixed phase at the end runs gently (at full rate it erased the column work:
                // think accuracy 55% → 2% in 300 steps).
                decay: LrDecay::Cosine,
                min_lr_ratio: 0.1,
                max_grad_norm: 1.0,
                weight_decay: 0.0,
                ..OptimConfig::default()
            },
            micro_batch_size: 16,
            loss_on: LossOn::All,
        };
        let tok = char_tokenizer::char_tokenizer()?;
        let eos = char_tokenizer::token_id(&tok, EOS)?;
        Ok(Pretrainer {
            trainer: SftTrainer::new(model, sft, p.steps)?,
            // A stream of its own: pretraining data must not shift when GRPO settings change.
            rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x7072_6574_7261_696e),
            tok,
            eos,
            digits: cfg.digits,
            batch_size: p.batch_size,
            mix: cfg.mix.clone(),
            skill_mix: CorpusMix {
                think_share: p.skill_think_share,
                ..cfg.mix.clone()
            },
            skill_steps: p.skill_steps,
            steps_done: 0,
            held_out,
            tokens: 0,
        })
    }

    /// One update on a fresh batch of documents.
    pub fn step(&mut self) -> Result<SftStepStats, DemoError> {
        let mut batch = Vec::with_capacity(self.batch_size);
        let mix = match self.steps_done < self.skill_steps {
            true => &self.skill_mix,
            false => &self.mix,
        };
        for _ in 0..self.batch_size {
            let doc = sample_example(&mut self.rng, self.digits, mix, &self.held_out);
            let mut completion_ids = self.tok.encode(&doc.completion, false)?;
            completion_ids.push(self.eos);
            batch.push(Example {
                prompt_ids: self.tok.encode(&doc.problem.prompt(), false)?,
                completion_ids,
            });
        }
        batch.sort_by_key(|e| e.prompt_ids.len() + e.completion_ids.len());
        let stats = self.trainer.step(&batch)?;
        self.tokens += stats.tokens;
        self.steps_done += 1;
        Ok(stats)
    }

    pub fn model(&self) -> &Model {
        self.trainer.model()
    }

    /// The pretrained model (its weights stay trainable for GRPO).
    pub fn into_model(self) -> Model {
        self.trainer.model().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_seeded_and_shaped() {
        let cfg = DemoConfig::standard();
        let mc = model_config(&cfg, 0);
        let a = init_model(&mc, 1).unwrap();
        let b = init_model(&mc, 1).unwrap();
        let c = init_model(&mc, 2).unwrap();
        let w = |m: &Model| {
            m.tensors()["model.layers.0.self_attn.q_proj.weight"]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(w(&a), w(&b));
        assert_ne!(w(&a), w(&c));
        let std = (w(&a).iter().map(|x| x * x).sum::<f32>() / w(&a).len() as f32).sqrt();
        assert!((std - 0.02).abs() < 0.002, "std {std}");
        assert_eq!(a.vars().len(), aha_model::decoder::weight_shapes(&mc).len());
    }

    #[test]
    fn pretraining_lowers_the_loss() {
        let mut cfg = DemoConfig::standard();
        cfg.model.hidden_size = 32;
        cfg.model.layers = 1;
        cfg.model.heads = 2;
        cfg.model.intermediate_size = 64;
        cfg.pretrain.steps = 30;
        cfg.pretrain.batch_size = 16;
        cfg.pretrain.warmup_steps = 3;
        let model = init_model(&model_config(&cfg, 0), 0).unwrap();
        let mut p = Pretrainer::new(model, &cfg, HashSet::new()).unwrap();
        let first = p.step().unwrap().loss;
        let mut last = first;
        for _ in 1..cfg.pretrain.steps {
            last = p.step().unwrap().loss;
        }
        // From ln(21) ≈ 3.04 at random init towards the corpus's entropy (the prompt's random
        // digits alone keep it above 1).
        assert!(first > 2.8 && last < first - 0.4, "loss {first} -> {last}");
    }
}
