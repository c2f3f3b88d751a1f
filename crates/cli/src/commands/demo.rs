//! `aha demo`: R1-Zero's "aha moment" in miniature, on this machine's CPU, in minutes.
//!
//! Flags become an [`aha_demo::config::DemoConfig`]; the pipeline is
//! [`aha_demo::run::run_demo`]. This file draws a progress bar per phase and prints the
//! closing table; it computes nothing itself.

use std::path::PathBuf;

use aha_demo::config::DemoConfig;
use aha_demo::run::{run_demo, Observer, Phase};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

/// The R1-Zero recipe in miniature: a tiny model learns to think before it answers.
///
/// 1. Pretrain a small Qwen2-style base model on additions (`Q:4821+5377=`) that are mostly
///    answered by guessing (`<answer>…</answer>`) and sometimes worked out column by column
///    (`<think>…</think><answer>…</answer>`).
/// 2. Evaluate it on held-out problems (pass@1 over k samples, maj@k).
/// 3. Train it with GRPO and a rule-checked reward only (1 for an exactly right, well-formed
///    answer): no reasoning data, no reward for thinking.
/// 4. Evaluate again. Accuracy climbs and responses grow longer: RL up-weights the thinking the
///    base model already had. Writes report.html (curves drawn in), summary.json and HF checkpoints.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// GRPO steps (default: 60, or 25 with --quick).
    #[arg(long)]
    steps: Option<usize>,
    /// Pretraining steps of the base model (default: the preset's).
    #[arg(long)]
    pretrain_steps: Option<usize>,
    /// Accuracy the base model must reach when made to think, on fresh check problems, before
    /// RL starts (default 0.9); below it the textbook phase of pretraining goes on.
    #[arg(long)]
    think_threshold: Option<f64>,
    /// Most pretraining steps the competence gate may use (default 2000). Reaching it without
    /// the threshold ends in "the base model never learned the written method".
    #[arg(long)]
    max_pretrain_steps: Option<usize>,
    /// Seed of everything: the same seed gives the same run.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory.
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    /// Operand digits of the addition task (1–9).
    #[arg(long)]
    digits: Option<usize>,
    /// Held-out problems evaluated before and after.
    #[arg(long)]
    eval_problems: Option<usize>,
    /// Samples per held-out problem (pass@1 over k, maj@k).
    #[arg(long)]
    k: Option<usize>,
    /// Share of worked (thinking) solutions in the pretraining corpus. Too rare (e.g. 0.02) and
    /// RL sharpens the guesser instead: accuracy rises a little, responses stay short.
    #[arg(long)]
    think_share: Option<f64>,
    /// Dollars per hour of this machine, for the cost line.
    #[arg(long)]
    price_per_hour: Option<f64>,
    /// A smaller run (about three minutes on 2 cores) that still shows the effect; CI runs it.
    #[arg(long)]
    quick: bool,
}

impl Args {
    fn config(&self) -> DemoConfig {
        let mut c = if self.quick {
            DemoConfig::quick()
        } else {
            DemoConfig::standard()
        };
        c.seed = self.seed;
        if let Some(s) = self.steps {
            c.grpo.steps = s;
        }
        if let Some(s) = self.pretrain_steps {
            // The mixed phase keeps its length; the textbook phase takes the rest.
            let mixed = c.pretrain.steps - c.pretrain.skill_steps;
            c.pretrain.steps = s;
            c.pretrain.skill_steps = s.saturating_sub(mixed);
            c.pretrain.gate.max_steps = c.pretrain.gate.max_steps.max(s);
        }
        if let Some(t) = self.think_threshold {
            c.pretrain.gate.think_accuracy = t;
        }
        if let Some(m) = self.max_pretrain_steps {
            c.pretrain.gate.max_steps = m;
        }
        if let Some(d) = self.digits {
            c.digits = d;
        }
        if let Some(n) = self.eval_problems {
            c.eval.problems = n;
        }
        if let Some(k) = self.k {
            c.eval.k = k;
        }
        if let Some(t) = self.think_share {
            c.mix.think_share = t;
        }
        if let Some(p) = self.price_per_hour {
            c.price_per_hour = p;
        }
        c
    }
}

/// One indicatif bar per phase.
struct Bars {
    bar: Option<ProgressBar>,
}

impl Observer for Bars {
    fn start(&mut self, phase: Phase, total: usize) {
        let (name, unit) = match phase {
            Phase::Pretrain => ("pretrain base model", "steps"),
            Phase::EvalBase => ("evaluate base model", "problems"),
            Phase::Grpo => ("GRPO (R1-Zero)     ", "steps"),
            Phase::EvalFinal => ("evaluate after GRPO", "problems"),
        };
        let style = ProgressStyle::with_template(&format!(
            "{name} [{{bar:30}}] {{pos}}/{{len}} {unit} {{elapsed:>4}}  {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        self.bar = Some(ProgressBar::new(total as u64).with_style(style));
    }

    fn progress(&mut self, done: usize, message: &str) {
        if let Some(b) = &self.bar {
            b.set_position(done as u64);
            b.set_message(message.to_string());
        }
    }

    fn finish(&mut self, message: &str) {
        if let Some(b) = self.bar.take() {
            b.finish_with_message(message.to_string());
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = args.config();
    let mut bars = Bars { bar: None };
    let summary = run_demo(&cfg, &args.out, &mut bars)
        .with_context(|| format!("running the demo into {}", args.out.display()))?;
    println!();
    print!("{}", summary.table());
    println!(
        "  report                {}\n  summary               {}\n  final checkpoint      {}",
        summary.report.display(),
        args.out.join("summary.json").display(),
        summary.final_checkpoint.display()
    );
    Ok(())
}
