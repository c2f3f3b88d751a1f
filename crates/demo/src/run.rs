//! The demo end to end: tokenizer → base model pretrained on the mixed corpus → held-out
//! evaluation → R1-Zero (GRPO, rule-checked reward only) → evaluation → checkpoints, plots,
//! report, `summary.json`.
//!
//! [`run_demo`] is the whole pipeline; it reports progress to an [`Observer`] (the CLI draws
//! progress bars with it) and writes everything under the output directory. GRPO is
//! [`aha_train::grpo::GrpoTrainer`] under a [`TrainConfig`] built here, rollouts the
//! [`aha_train::engine`], evaluation [`aha_train::eval`], rewards aha-verify: this file only wires
//! them to the demo's task and measures.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use aha_model::char_tokenizer::{self, EOS};
use aha_model::config::StoredDtype;
use aha_model::init::random_model;
use aha_model::save::save_checkpoint;
use aha_model::tokenizer::Tokenizer;
use aha_train::config::{
    DeviceSpec, GroupFilter, GrpoConfig, ModelSection, OutputConfig, RolloutConfig, TrainConfig,
};
use aha_train::data::{DataConfig, DataSource, Dataset, Item, MissingAnswer};
use aha_train::grpo::GrpoTrainer;
use aha_train::optim::OptimConfig;
use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::base::{model_config, Pretrainer};
use crate::config::DemoConfig;
use crate::corpus::{generate, Style};
use crate::evaluate::{
    evaluate, item, prompt_template, reward_spec, samples_for_report, style_accuracy, Judged,
    Sampling,
};
use crate::gate::{self, check_problems};
use crate::kl::sampled_kl;
use crate::report::{self, ReportInput};
use crate::summary::{BaseCheck, Cost, DemoSummary, Evaluation, StepPoint, Verdict};
use crate::task::Problem;
use crate::DemoError;

/// The pipeline's phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pretrain,
    EvalBase,
    Grpo,
    EvalFinal,
}

/// Receives progress; the CLI turns it into progress bars.
pub trait Observer {
    /// A phase starts with `total` units (steps or problems).
    fn start(&mut self, phase: Phase, total: usize);
    /// `done` units of the current phase are done; `message` holds the live numbers.
    fn progress(&mut self, done: usize, message: &str);
    /// The current phase ended; `message` sums it up.
    fn finish(&mut self, message: &str);
}

/// An observer that ignores everything (tests, library use).
pub struct Silent;

impl Observer for Silent {
    fn start(&mut self, _: Phase, _: usize) {}
    fn progress(&mut self, _: usize, _: &str) {}
    fn finish(&mut self, _: &str) {}
}

/// Measure KL to the base model every this many GRPO steps (it costs two forwards).
const KL_EVERY: usize = 5;
/// Completions shown before and after in the report.
const REPORT_SAMPLES: usize = 6;

/// Runs the demo under `cfg`, writing into `out`. Returns the summary (also in `summary.json`).
pub fn run_demo(
    cfg: &DemoConfig,
    out: &Path,
    obs: &mut dyn Observer,
) -> Result<DemoSummary, DemoError> {
    cfg.validate()?;
    let started = Instant::now();
    write_config(cfg, out)?;

    let held_out = held_out_problems(cfg);
    let held_set: HashSet<Problem> = held_out.iter().copied().collect();
    let tok = char_tokenizer::char_tokenizer()?;
    let eos = char_tokenizer::token_id(&tok, EOS)?;
    let mcfg = model_config(cfg, eos);
    let mut cost = Cost {
        price_per_hour: cfg.price_per_hour,
        ..Cost::default()
    };

    // 1. The base model, pretrained until it can think (or the step cap).
    let pretrained = pretrain_base(cfg, &mcfg, &held_set, &tok, obs, &mut cost)?;
    let base = pretrained.model;
    let base_dir = out.join("base");
    save_checkpoint(&base, &tok, None, &base_dir, StoredDtype::F32)?;

    // 2. The base model on held-out problems.
    let held_out_eval = HeldOutEval {
        problems: &held_out,
        tok: &tok,
        sampling: Sampling {
            k: cfg.eval.k,
            temperature: cfg.grpo.temperature,
            max_new_tokens: cfg.max_completion_tokens(),
            seed: cfg.seed ^ 0x6576_616c,
        },
    };
    let (base_eval, base_judged) =
        held_out_eval.run(&base, Phase::EvalBase, "base model", &mut cost, obs)?;
    let t = Instant::now();
    let forced = |style| style_accuracy(&base, &tok, &held_out, style, held_out_eval.sampling);
    let base_check = BaseCheck {
        threshold: cfg.pretrain.gate.think_accuracy,
        checks: pretrained.checks,
        passed: pretrained.passed,
        extended: pretrained.steps > cfg.pretrain.steps,
        think_accuracy: forced(Style::Think)?,
        direct_accuracy: forced(Style::Direct)?,
    };
    cost.eval_seconds += t.elapsed().as_secs_f64();

    // 3. R1-Zero.
    let t = Instant::now();
    let reference = base.frozen_copy()?;
    let train_cfg = grpo_config(cfg, &base_dir)?;
    let dataset = Dataset::Rows {
        path: PathBuf::from("<demo prompts>"),
        items: grpo_items(cfg, &held_set),
    };
    let mut trainer = GrpoTrainer::new(train_cfg, base, tok.clone(), dataset)?;
    let points = grpo_steps(cfg, &mut trainer, &reference, &tok, t, obs)?;
    cost.flops += trainer.state().flops;
    cost.grpo_seconds = t.elapsed().as_secs_f64();
    obs.finish(&format!("{} GRPO steps", cfg.grpo.steps));
    let policy = trainer.policy().clone();
    let final_dir = out.join("final");
    save_checkpoint(&policy, &tok, None, &final_dir, StoredDtype::F32)?;

    // 4. After.
    let (final_eval, final_judged) =
        held_out_eval.run(&policy, Phase::EvalFinal, "after GRPO", &mut cost, obs)?;

    // 5. Report, summary.
    let (corpus_think, corpus_acc) = corpus_shares(cfg);
    cost.seconds = started.elapsed().as_secs_f64();
    cost.dollars = cost.seconds / 3600.0 * cost.price_per_hour;
    let mut summary = DemoSummary {
        seed: cfg.seed,
        digits: cfg.digits,
        parameters: mcfg.num_parameters(),
        base_accuracy: base_eval.pass_at_1,
        final_accuracy: final_eval.pass_at_1,
        base_maj_accuracy: base_eval.maj_at_k,
        final_maj_accuracy: final_eval.maj_at_k,
        base_mean_length: base_eval.mean_length,
        final_mean_length: final_eval.mean_length,
        base_think_share: base_eval.think_share,
        final_think_share: final_eval.think_share,
        steps: cfg.grpo.steps,
        pretrain_steps: pretrained.steps,
        verdict: Verdict::of(&base_check, &base_eval, &final_eval),
        base_check,
        seconds: cost.seconds,
        pretrain_seconds: cost.pretrain_seconds,
        grpo_seconds: cost.grpo_seconds,
        eval_seconds: cost.eval_seconds,
        flops: cost.flops,
        dollars: cost.dollars,
        price_per_hour: cost.price_per_hour,
        base_checkpoint: base_dir,
        final_checkpoint: final_dir,
        report: out.join("report.html"),
    };
    let before = samples_for_report(&base_judged, &held_out, REPORT_SAMPLES);
    let after = samples_for_report(&final_judged, &held_out, REPORT_SAMPLES);
    let write_all = |s: &DemoSummary| -> Result<(), DemoError> {
        report::write(
            &ReportInput {
                config: cfg,
                summary: s,
                base: &base_eval,
                trained: &final_eval,
                steps: &points,
                samples_before: &before,
                samples_after: &after,
                corpus_think_share: corpus_think,
                corpus_accuracy: corpus_acc,
            },
            out,
        )?;
        s.write(out)?;
        Ok(())
    };
    write_all(&summary)?;
    // The written files are part of the run's time: restate it once they exist.
    summary.seconds = started.elapsed().as_secs_f64();
    summary.dollars = summary.seconds / 3600.0 * summary.price_per_hour;
    write_all(&summary)?;
    write_metrics(&points, out)?;
    Ok(summary)
}

/// What the pretraining mix holds, measured on 20,000 documents: (think share, accuracy).
fn corpus_shares(cfg: &DemoConfig) -> (f64, f64) {
    let corpus = generate(20_000, cfg.digits, &cfg.mix, cfg.seed, &HashSet::new());
    let n = corpus.len() as f64;
    let think = corpus.iter().filter(|d| d.style == Style::Think).count() as f64 / n;
    let right = corpus.iter().filter(|d| d.correct).count() as f64 / n;
    (think, right)
}

/// Creates `out` and writes the run's config there as `demo_config.json`.
fn write_config(cfg: &DemoConfig, out: &Path) -> Result<(), DemoError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DemoError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let cfg_path = out.join("demo_config.json");
    let cfg_text = serde_json::to_string_pretty(cfg)
        .map_err(|e| DemoError::Config(format!("serialising the config: {e}")))?;
    std::fs::write(&cfg_path, cfg_text + "\n").map_err(io(&cfg_path))
}

/// Phase 1: a random model of shape `mcfg` pretrained through the competence gate, on no
/// problem of `held_set` or of the gate's own check, its time and FLOPs charged to `cost`.
fn pretrain_base(
    cfg: &DemoConfig,
    mcfg: &aha_model::ModelConfig,
    held_set: &HashSet<Problem>,
    tok: &Tokenizer,
    obs: &mut dyn Observer,
    cost: &mut Cost,
) -> Result<gate::Pretrained, DemoError> {
    let t = Instant::now();
    let model = random_model(mcfg, cfg.seed, &Device::Cpu)?;
    let check = check_problems(cfg, held_set);
    let mut unseen = held_set.clone();
    unseen.extend(check.iter().copied());
    let pre = Pretrainer::new(model, cfg, unseen)?;
    let pretrained = gate::pretrain(pre, cfg, &check, tok, obs)?;
    cost.flops += 3.0 * mcfg.flops_per_token(32) * pretrained.tokens as f64;
    cost.pretrain_seconds = t.elapsed().as_secs_f64();
    obs.finish(&format!(
        "pretrained {} steps, final loss {:.3}; {}",
        pretrained.steps,
        pretrained.loss,
        match pretrained.passed {
            true => "it thinks right",
            false => "it never learned to think right",
        }
    ));
    Ok(pretrained)
}

/// Phase 3's steps: GRPO as one progress phase, with each step's training-batch numbers and,
/// every [`KL_EVERY`] steps and at the last, the KL to `reference`. `started` times the points.
fn grpo_steps(
    cfg: &DemoConfig,
    trainer: &mut GrpoTrainer,
    reference: &aha_model::Model,
    tok: &Tokenizer,
    started: Instant,
    obs: &mut dyn Observer,
) -> Result<Vec<StepPoint>, DemoError> {
    let eos = char_tokenizer::token_id(tok, EOS)?;
    obs.start(Phase::Grpo, cfg.grpo.steps);
    let mut points: Vec<StepPoint> = Vec::with_capacity(cfg.grpo.steps);
    let mut last_kl = 0.0;
    for step in 0..cfg.grpo.steps {
        let o = trainer.step()?;
        let m = &o.metrics;
        let think = o
            .samples
            .iter()
            .filter(|s| s.completion.trim_start().starts_with("<think>"))
            .count() as f64
            / o.samples.len().max(1) as f64;
        if step % KL_EVERY == 0 || step + 1 == cfg.grpo.steps {
            last_kl = sampled_kl(trainer.policy(), reference, tok, &o.samples, eos)?;
        }
        points.push(StepPoint {
            step: m.step,
            reward: m.reward_mean,
            accuracy: m.accuracy,
            mean_length: m.completion_len_mean,
            think_share: think,
            kl: last_kl,
            seconds: started.elapsed().as_secs_f64(),
        });
        obs.progress(
            step + 1,
            &format!(
                "reward {:.2}  acc {:.0}%  think {:.0}%  len {:.1}",
                m.reward_mean,
                100.0 * m.accuracy,
                100.0 * think,
                m.completion_len_mean
            ),
        );
    }
    Ok(points)
}

/// Held-out problems: distinct, from their own seeded stream.
pub fn held_out_problems(cfg: &DemoConfig) -> Vec<Problem> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x6865_6c64);
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(cfg.eval.problems);
    while out.len() < cfg.eval.problems {
        let p = Problem::sample(&mut rng, cfg.digits);
        if seen.insert(p) {
            out.push(p);
        }
    }
    out
}

/// GRPO's prompts: enough fresh problems for every step, none held out.
fn grpo_items(cfg: &DemoConfig, held_out: &HashSet<Problem>) -> Vec<Item> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x6772_706f);
    let n = cfg.grpo.steps * cfg.grpo.prompts_per_step;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let p = Problem::sample(&mut rng, cfg.digits);
        if !held_out.contains(&p) {
            out.push(item(&p));
        }
    }
    out
}

/// The trainer's config for R1-Zero on the demo task: the rule-checked reward only, no KL
/// penalty, groups with equal rewards skipped (no refill), one on-policy pass.
fn grpo_config(cfg: &DemoConfig, base_dir: &Path) -> Result<TrainConfig, DemoError> {
    let g = &cfg.grpo;
    let n = g.prompts_per_step * g.group_size;
    let train = TrainConfig {
        preset: None,
        name: "demo".into(),
        seed: cfg.seed,
        steps: g.steps,
        device: DeviceSpec::Cpu,
        dtype: Default::default(),
        model: ModelSection {
            path: Some(base_dir.to_path_buf()),
            init: None,
            init_seed: 0,
        },
        data: DataConfig {
            source: DataSource::Addition { digits: cfg.digits },
            template: prompt_template(),
            missing_answer: MissingAnswer::Error,
        },
        rollout: RolloutConfig {
            prompts_per_step: g.prompts_per_step,
            group_size: g.group_size,
            temperature: g.temperature,
            max_new_tokens: cfg.max_completion_tokens(),
            ..RolloutConfig::default()
        },
        reward: vec![reward_spec()],
        grpo: GrpoConfig {
            beta: 0.0,
            filter: GroupFilter::DropUniform,
            max_refill_rounds: 0,
            passes: 1,
            minibatches: 1,
            micro_batch_size: n,
            ..GrpoConfig::default()
        },
        optim: OptimConfig {
            lr: g.lr,
            max_grad_norm: 1.0,
            ..OptimConfig::default()
        },
        output: OutputConfig {
            samples_per_step: n,
            progress: false,
            ..OutputConfig::default()
        },
    };
    train.validate()?;
    Ok(train)
}

/// The held-out evaluation run before and after GRPO: same problems, samples and seed, so the
/// two numbers differ only by the model.
struct HeldOutEval<'a> {
    problems: &'a [Problem],
    tok: &'a Tokenizer,
    sampling: Sampling,
}

impl HeldOutEval<'_> {
    /// Evaluates `model` as one progress phase, charging its time and FLOPs to `cost`.
    fn run(
        &self,
        model: &aha_model::Model,
        phase: Phase,
        label: &str,
        cost: &mut Cost,
        obs: &mut dyn Observer,
    ) -> Result<(Evaluation, Vec<Vec<Judged>>), DemoError> {
        let t = Instant::now();
        obs.start(phase, self.problems.len());
        let (eval, judged) = evaluate(model, self.tok, self.problems, self.sampling)?;
        cost.eval_seconds += t.elapsed().as_secs_f64();
        cost.flops += eval_flops(
            model.config(),
            self.problems,
            self.sampling.k,
            eval.mean_length,
        );
        obs.progress(self.problems.len(), "");
        obs.finish(&format!(
            "{label}: accuracy {:.1}%, think share {:.1}%, mean length {:.1}",
            100.0 * eval.pass_at_1,
            100.0 * eval.think_share,
            eval.mean_length
        ));
        Ok((eval, judged))
    }
}

/// FLOPs of an evaluation: prompts prefilled once per sample, completions decoded.
fn eval_flops(mcfg: &aha_model::ModelConfig, problems: &[Problem], k: usize, mean_len: f64) -> f64 {
    let prompt = problems.first().map_or(0, |p| p.prompt().len());
    let tokens = problems.len() as f64 * (prompt as f64 + k as f64 * mean_len);
    mcfg.flops_per_token(prompt + mean_len as usize) * tokens
}

/// `grpo_metrics.jsonl`: the plotted numbers, one line per step.
fn write_metrics(points: &[StepPoint], out: &Path) -> Result<(), DemoError> {
    let path = out.join("grpo_metrics.jsonl");
    let mut text = String::new();
    for p in points {
        let line = serde_json::to_string(p)
            .map_err(|e| DemoError::Config(format!("serialising metrics: {e}")))?;
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::write(&path, text).map_err(|source| DemoError::Io { path, source })
}
