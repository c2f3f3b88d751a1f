//! The demo's settings: task size, corpus mix, model shape, pretraining, GRPO, evaluation, price.
//!
//! [`DemoConfig::standard`] is `aha demo`, [`DemoConfig::quick`] is `aha demo --quick` (the CI
//! end-to-end test). Why each number is what it is lives in the module doc of `demo/mod.rs`; this
//! file only holds them and checks they make sense.

use serde::{Deserialize, Serialize};

use crate::corpus::CorpusMix;
use crate::task::MAX_DIGITS;
use crate::DemoError;

/// The base model's shape (Qwen2-style; the vocabulary is `aha_model::char_tokenizer`'s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    pub hidden_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate_size: usize,
}

/// Pretraining the base model on the mixed corpus (loss on every token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    /// Planned steps: `skill_steps` of textbook, then `steps - skill_steps` of the mixed phase;
    /// the competence gate may add textbook steps (up to `gate.max_steps` in all).
    pub steps: usize,
    /// Documents per step.
    pub batch_size: usize,
    pub lr: f64,
    pub warmup_steps: usize,
    /// The first `skill_steps` steps draw from a mix with `skill_think_share` worked solutions
    /// (a "textbook" phase that teaches the column work); the rest use `mix`, which sets the
    /// base model's preference for answering directly.
    pub skill_steps: usize,
    pub skill_think_share: f64,
    /// Length of the textbook phase's cosine decay (to a tenth of `lr`), whenever the gate ends
    /// that phase.
    pub decay_steps: usize,
    /// AdamW's second-moment decay and weight decay, in both phases.
    pub beta2: f64,
    pub weight_decay: f64,
    /// Learning rate of the mixed phase (constant, fresh optimizer).
    pub mix_lr: f64,
    /// The competence check between the textbook phase and the mixed one.
    pub gate: GateConfig,
}

/// The base model must earn its place before RL starts: after the textbook phase its accuracy
/// when made to think is checked on fresh problems, and the textbook phase goes on in chunks
/// until it reaches `think_accuracy` or pretraining reaches `max_steps`. Past the cap the run
/// says that the base model never learned the written method (RL cannot create it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// Share of checked problems the base model must solve when its response is opened with
    /// `<think>` (sampled at the GRPO temperature).
    pub think_accuracy: f64,
    /// Problems checked: drawn apart from the held-out ones and never in the corpus.
    pub problems: usize,
    /// Textbook steps added after each failed check.
    pub extend_steps: usize,
    /// Pretraining steps in all (textbook, extensions and the mixed phase) the gate may use.
    pub max_steps: usize,
}

/// R1-Zero: GRPO with the 0/1 accuracy-and-format reward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoConfig {
    pub steps: usize,
    /// `B`
    pub prompts_per_step: usize,
    /// `G`
    pub group_size: usize,
    pub lr: f64,
    pub temperature: f32,
}

/// Held-out evaluation before and after GRPO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    pub problems: usize,
    /// Samples per problem (pass@1 over k, maj@k).
    pub k: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    pub seed: u64,
    /// Operand digits.
    pub digits: usize,
    pub mix: CorpusMix,
    pub model: ModelShape,
    pub pretrain: PretrainConfig,
    pub grpo: GrpoConfig,
    pub eval: EvalConfig,
    /// Dollars per hour of the machine the demo runs on, for the cost line.
    pub price_per_hour: f64,
}

impl DemoConfig {
    /// `aha demo`.
    pub fn standard() -> Self {
        DemoConfig {
            seed: 0,
            digits: 4,
            mix: CorpusMix::default(),
            model: ModelShape {
                hidden_size: 128,
                layers: 4,
                heads: 4,
                intermediate_size: 384,
            },
            pretrain: PretrainConfig {
                batch_size: 32,
                lr: 3e-3,
                warmup_steps: 30,
                steps: 600,
                skill_steps: 500,
                skill_think_share: 1.0,
                decay_steps: 1000,
                beta2: 0.95,
                weight_decay: 0.1,
                mix_lr: 3e-4,
                gate: GateConfig {
                    think_accuracy: 0.9,
                    problems: 100,
                    extend_steps: 100,
                    max_steps: 2000,
                },
            },
            grpo: GrpoConfig {
                steps: 60,
                prompts_per_step: 16,
                group_size: 8,
                lr: 1.5e-4,
                temperature: 1.0,
            },
            eval: EvalConfig {
                problems: 200,
                k: 4,
            },
            price_per_hour: 0.10,
        }
    }

    /// `aha demo --quick`: the same pretraining with a lower bar and a lower cap at the gate
    /// (60% of check problems thought right, 900 steps: the column work appears around steps
    /// 500-800, so pretraining cannot shrink much), fewer GRPO steps and a smaller
    /// evaluation; the effect is clear by GRPO step 20. CI runs it.
    pub fn quick() -> Self {
        let mut c = Self::standard();
        c.grpo.steps = 25;
        c.pretrain.gate.max_steps = 900;
        c.pretrain.gate.think_accuracy = 0.6;
        c.eval.problems = 100;
        c.eval.k = 2;
        c
    }

    /// Longest completion the engine samples: the worst think response for `digits` columns, so
    /// a correct response always fits and nothing longer is ever needed.
    pub fn max_completion_tokens(&self) -> usize {
        // Per column at most `9+9+1=19` (8 characters) plus a space; tags 4 × 1; answer digits+1.
        9 * self.digits + 4 + self.digits + 1 + 1
    }

    pub fn validate(&self) -> Result<(), DemoError> {
        let bad = |what: &str, why: &str| Err(DemoError::Config(format!("{what} {why}")));
        if !(1..=MAX_DIGITS).contains(&self.digits) {
            return bad("digits", &format!("must be between 1 and {MAX_DIGITS}"));
        }
        if !(0.0..=1.0).contains(&self.mix.think_share) {
            return bad("mix.think_share", "must be between 0 and 1");
        }
        if !(0.0..=1.0).contains(&self.pretrain.skill_think_share) {
            return bad("pretrain.skill_think_share", "must be between 0 and 1");
        }
        if self.mix.direct_right.is_empty()
            || self
                .mix
                .direct_right
                .iter()
                .any(|p| !(0.0..=1.0).contains(p))
        {
            return bad(
                "mix.direct_right",
                "must list probabilities between 0 and 1",
            );
        }
        let m = &self.model;
        if m.hidden_size == 0 || m.layers == 0 || m.heads == 0 || m.intermediate_size == 0 {
            return bad("model", "sizes must be positive");
        }
        if !m.hidden_size.is_multiple_of(m.heads) || !(m.hidden_size / m.heads).is_multiple_of(2) {
            return bad("model.hidden_size", "must split into heads of even size");
        }
        let gate = &self.pretrain.gate;
        if !(0.0..=1.0).contains(&gate.think_accuracy) {
            return bad("pretrain.gate.think_accuracy", "must be between 0 and 1");
        }
        if gate.problems == 0 || gate.extend_steps == 0 {
            return bad(
                "pretrain.gate",
                "needs at least one problem and one step per extension",
            );
        }
        if self.pretrain.skill_steps > self.pretrain.steps {
            return bad("pretrain.skill_steps", "must not exceed pretrain.steps");
        }
        if gate.max_steps < self.pretrain.steps {
            return bad("pretrain.gate.max_steps", "must be at least pretrain.steps");
        }
        if self.pretrain.batch_size == 0 || self.pretrain.lr <= 0.0 || self.pretrain.mix_lr <= 0.0 {
            return bad("pretrain", "needs a positive batch size and learning rate");
        }
        if !(0.0..1.0).contains(&self.pretrain.beta2)
            || self.pretrain.weight_decay.is_nan()
            || self.pretrain.weight_decay < 0.0
        {
            return bad(
                "pretrain",
                "needs beta2 in [0, 1) and a weight decay of zero or more",
            );
        }
        let g = &self.grpo;
        if g.prompts_per_step == 0 || g.group_size < 2 {
            return bad(
                "grpo",
                "needs at least one prompt per step and two samples per group",
            );
        }
        if g.lr <= 0.0 || g.temperature <= 0.0 {
            return bad("grpo", "needs a positive learning rate and temperature");
        }
        if self.eval.problems == 0 || self.eval.k == 0 {
            return bad("eval", "needs at least one problem and one sample");
        }
        if self.price_per_hour.is_nan() || self.price_per_hour < 0.0 {
            return bad("price_per_hour", "must be zero or more");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Problem;

    #[test]
    fn presets_validate_and_fit_the_longest_response() {
        DemoConfig::standard().validate().unwrap();
        DemoConfig::quick().validate().unwrap();
        let tok = aha_model::char_tokenizer::char_tokenizer().unwrap();
        for digits in 1..=MAX_DIGITS {
            let cfg = DemoConfig {
                digits,
                ..DemoConfig::standard()
            };
            let worst = Problem {
                a: 10u64.pow(digits as u32) - 1,
                b: 10u64.pow(digits as u32) - 1,
                digits,
            };
            let n = tok.encode(&worst.think_completion(), false).unwrap().len() + 1;
            assert!(n <= cfg.max_completion_tokens(), "{digits}: {n}");
        }
    }

    #[test]
    fn bad_settings_name_the_field() {
        let mut c = DemoConfig::standard();
        c.digits = 12;
        assert!(c.validate().unwrap_err().to_string().contains("digits"));
        let mut c = DemoConfig::standard();
        c.grpo.group_size = 1;
        assert!(c.validate().unwrap_err().to_string().contains("grpo"));
    }
}
