//! Pretraining the base model until it has earned its place: the competence gate.
//!
//! RL only up-weights what the base model can already do; if its written method is wrong, GRPO
//! teaches it to write wrong work (seed 1 at a fixed 800 steps: 3.4% accuracy when thinking,
//! +10.8 points after GRPO). So the textbook phase ends on a measurement, not a step count:
//! after the planned textbook steps the model is made to think (`<think>` opens its response)
//! on fresh check problems, and the textbook phase goes on in chunks until it solves
//! `gate.think_accuracy` of them or pretraining would pass `gate.max_steps`. Then the short
//! mixed phase sets the base model's habit of answering directly, as before.

use std::collections::HashSet;

use aha_model::tokenizer::Tokenizer;
use aha_model::Model;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::base::Pretrainer;
use crate::config::DemoConfig;
use crate::corpus::Style;
use crate::evaluate::{style_accuracy, Sampling};
use crate::run::{Observer, Phase};
use crate::summary::GateCheck;
use crate::task::Problem;
use crate::DemoError;

/// The check problems: their own seeded stream, none held out (the corpus skips them too).
pub fn check_problems(cfg: &DemoConfig, held_out: &HashSet<Problem>) -> Vec<Problem> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x6761_7465);
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(cfg.pretrain.gate.problems);
    while out.len() < cfg.pretrain.gate.problems {
        let p = Problem::sample(&mut rng, cfg.digits);
        if !held_out.contains(&p) && seen.insert(p) {
            out.push(p);
        }
    }
    out
}

/// What pretraining did.
pub struct Pretrained {
    pub model: Model,
    pub steps: usize,
    pub tokens: usize,
    pub loss: f64,
    pub checks: Vec<GateCheck>,
    pub passed: bool,
}

/// Runs the textbook phase, the gate and the mixed phase on `pre`, reporting progress as the
/// [`Phase::Pretrain`] phase (its total grows when the gate extends the textbook phase).
pub fn pretrain(
    mut pre: Pretrainer,
    cfg: &DemoConfig,
    check: &[Problem],
    tok: &Tokenizer,
    obs: &mut dyn Observer,
) -> Result<Pretrained, DemoError> {
    let p = &cfg.pretrain;
    let gate = &p.gate;
    let mix_steps = p.steps - p.skill_steps;
    let sampling = Sampling {
        k: 1,
        temperature: cfg.grpo.temperature,
        max_new_tokens: cfg.max_completion_tokens(),
        seed: cfg.seed ^ 0x6368_6563,
    };
    let mut total = p.steps;
    obs.start(Phase::Pretrain, total);
    let mut loss = f64::NAN;
    let mut checks = Vec::new();
    let mut textbook_until = p.skill_steps;
    let passed = loop {
        while pre.steps_done() < textbook_until {
            loss = pre.step()?.loss;
            obs.progress(pre.steps_done(), &format!("textbook, loss {loss:.3}"));
        }
        let think_accuracy = style_accuracy(pre.model(), tok, check, Style::Think, sampling)?;
        checks.push(GateCheck {
            step: pre.steps_done(),
            think_accuracy,
        });
        if think_accuracy >= gate.think_accuracy {
            break true;
        }
        if textbook_until + gate.extend_steps + mix_steps > gate.max_steps {
            break false;
        }
        textbook_until += gate.extend_steps;
        total = textbook_until + mix_steps;
        // A longer bar: the gate sent the model back to the textbook.
        obs.start(Phase::Pretrain, total);
        obs.progress(
            pre.steps_done(),
            &format!(
                "thinks right {:.0}% < {:.0}%: more textbook",
                100.0 * think_accuracy,
                100.0 * gate.think_accuracy
            ),
        );
    };
    pre.end_textbook()?;
    while pre.steps_done() < total {
        loss = pre.step()?.loss;
        obs.progress(pre.steps_done(), &format!("mixed, loss {loss:.3}"));
    }
    Ok(Pretrained {
        steps: pre.steps_done(),
        tokens: pre.tokens,
        loss,
        checks,
        passed,
        model: pre.into_model(),
    })
}
