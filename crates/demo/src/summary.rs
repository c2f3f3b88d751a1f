//! What a demo run measured: evaluations, per-step curves, samples, cost — and `summary.json`.
//!
//! These are plain records filled by the pipeline (`run.rs`) and read by the report, the plots and
//! the CLI's closing table. Nothing here trains or samples.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::DemoError;

/// One evaluation on the held-out problems, with the R1 protocol: k samples per problem at the
/// sampling temperature, pass@1 = mean accuracy over all samples, maj@k = accuracy of each
/// problem's most frequent answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub problems: usize,
    pub k: usize,
    pub pass_at_1: f64,
    pub maj_at_k: f64,
    /// Share of responses that open with `<think>`.
    pub think_share: f64,
    /// Share of responses that break the template (no well-formed answer).
    pub malformed_share: f64,
    /// Mean completion length in tokens (end-of-sequence included).
    pub mean_length: f64,
    /// pass@1 of think responses and of direct ones (`None` when there were none).
    pub think_accuracy: Option<f64>,
    pub direct_accuracy: Option<f64>,
}

/// One GRPO step's training-batch numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepPoint {
    pub step: usize,
    pub reward: f64,
    /// Share of the step's completions that are correct (equal to `reward` with the demo's 0/1
    /// reward; kept apart so a shaped reward would not blur it).
    pub accuracy: f64,
    pub mean_length: f64,
    pub think_share: f64,
    /// Mean KL(policy ‖ base), estimated on the sampled tokens (k1).
    pub kl: f64,
    pub seconds: f64,
}

/// A completion shown in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub prompt: String,
    pub completion: String,
    pub answer: String,
    pub correct: bool,
}

/// Wall time and arithmetic spent, per phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub pretrain_seconds: f64,
    pub grpo_seconds: f64,
    pub eval_seconds: f64,
    /// Everything, including building the tokenizer, saving and the report.
    pub seconds: f64,
    /// Model FLOPs (2 per multiply-add; training counted as 3× forward).
    pub flops: f64,
    /// `seconds` at `price_per_hour`.
    pub dollars: f64,
    pub price_per_hour: f64,
}

/// One competence check of the base model during pretraining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateCheck {
    /// Pretraining steps done when checked.
    pub step: usize,
    /// Accuracy when made to think, on the check problems.
    pub think_accuracy: f64,
}

/// How the base model fared at the competence gate, and what it can do when made to think or
/// to answer directly (responses opened with `<think>` or `<answer>`, on the held-out problems).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaseCheck {
    /// The think accuracy the gate asks for.
    pub threshold: f64,
    pub checks: Vec<GateCheck>,
    /// Whether the textbook phase reached the threshold within the step cap.
    pub passed: bool,
    /// Whether pretraining went on past its planned steps.
    pub extended: bool,
    /// The final base model, made to think.
    pub think_accuracy: f64,
    /// The final base model, made to answer directly.
    pub direct_accuracy: f64,
}

/// What the run showed, in one line of the summary and the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The base model could think, and RL made it do so: accuracy rose, responses grew.
    Aha,
    /// The base model could think, but RL did not turn that into a clear gain.
    NoAha,
    /// The base model never learned the written method within the step cap; whatever RL did
    /// afterwards is not the aha moment.
    BaseNeverLearned,
}

/// Gain in held-out pass@1 (and longer responses) that counts as the effect.
pub const AHA_MIN_GAIN: f64 = 0.2;

impl Verdict {
    pub fn of(check: &BaseCheck, base: &Evaluation, trained: &Evaluation) -> Verdict {
        if !check.passed {
            Verdict::BaseNeverLearned
        } else if trained.pass_at_1 - base.pass_at_1 >= AHA_MIN_GAIN
            && trained.mean_length > base.mean_length
        {
            Verdict::Aha
        } else {
            Verdict::NoAha
        }
    }

    /// The sentence the terminal and the report show.
    pub fn message(&self) -> &'static str {
        match self {
            Verdict::Aha => {
                "aha: RL, rewarded only for right answers, made the base model use the written \
                 method it already had"
            }
            Verdict::NoAha => {
                "no aha moment this time: the base model could think, but RL did not turn that \
                 into a clear gain"
            }
            Verdict::BaseNeverLearned => {
                "the base model never learned the written method: RL cannot create it (not an \
                 RL result; pretrain longer: --max-pretrain-steps)"
            }
        }
    }
}

/// What DeepSeek reported for DeepSeek-R1, to set the demo's cost beside.
pub const DEEPSEEK_R1_GPU_HOURS: f64 = 147_000.0;
pub const DEEPSEEK_R1_DOLLARS: f64 = 294_000.0;

/// `summary.json`: the headline numbers of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoSummary {
    pub seed: u64,
    pub digits: usize,
    pub parameters: usize,
    pub base_accuracy: f64,
    pub final_accuracy: f64,
    pub base_maj_accuracy: f64,
    pub final_maj_accuracy: f64,
    pub base_mean_length: f64,
    pub final_mean_length: f64,
    pub base_think_share: f64,
    pub final_think_share: f64,
    /// GRPO steps taken.
    pub steps: usize,
    pub pretrain_steps: usize,
    pub base_check: BaseCheck,
    pub verdict: Verdict,
    pub seconds: f64,
    pub pretrain_seconds: f64,
    pub grpo_seconds: f64,
    pub eval_seconds: f64,
    pub flops: f64,
    pub dollars: f64,
    pub price_per_hour: f64,
    /// The base model (after pretraining), HF layout.
    pub base_checkpoint: PathBuf,
    /// The model after GRPO, HF layout: loadable by transformers.
    pub final_checkpoint: PathBuf,
    pub report: PathBuf,
}

impl DemoSummary {
    /// Writes `summary.json` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, DemoError> {
        let path = dir.join("summary.json");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| DemoError::Config(format!("serialising the summary: {e}")))?;
        std::fs::write(&path, text + "\n").map_err(|source| DemoError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// The closing table printed by `aha demo`.
    pub fn table(&self) -> String {
        let pct = |x: f64| format!("{:.1}%", 100.0 * x);
        let rows = [
            ("", "base".to_string(), "after GRPO".to_string()),
            (
                "accuracy (pass@1)",
                pct(self.base_accuracy),
                pct(self.final_accuracy),
            ),
            (
                "maj@k",
                pct(self.base_maj_accuracy),
                pct(self.final_maj_accuracy),
            ),
            (
                "think share",
                pct(self.base_think_share),
                pct(self.final_think_share),
            ),
            (
                "mean length (tokens)",
                format!("{:.1}", self.base_mean_length),
                format!("{:.1}", self.final_mean_length),
            ),
        ];
        let mut out = String::new();
        if self.verdict == Verdict::BaseNeverLearned {
            out.push_str(&format!("  {}\n\n", self.verdict.message().to_uppercase()));
        }
        for (name, a, b) in rows {
            out.push_str(&format!("  {name:<22}{a:>10}{b:>14}\n"));
        }
        out.push_str(&format!(
            "  {:<22}{:>+9.1} points\n",
            "accuracy gain",
            100.0 * (self.final_accuracy - self.base_accuracy)
        ));
        let c = &self.base_check;
        out.push_str(&format!(
            "  {:<22}{} when made to think, {} when made to answer directly (gate: {} to think, {})\n",
            "base model",
            pct(c.think_accuracy),
            pct(c.direct_accuracy),
            pct(c.threshold),
            match (c.passed, c.extended) {
                (false, _) => "not reached".to_string(),
                (true, true) => format!("reached after extending pretraining to {} steps", self.pretrain_steps),
                (true, false) => "reached".to_string(),
            }
        ));
        out.push_str(&format!("  {:<22}{}\n", "verdict", self.verdict.message()));
        out.push_str(&format!(
            "  {:<22}{} pretraining + {} GRPO steps, {:.0} s ({:.0} s pretraining, {:.0} s GRPO, {:.0} s eval)\n",
            "work",
            self.pretrain_steps,
            self.steps,
            self.seconds,
            self.pretrain_seconds,
            self.grpo_seconds,
            self.eval_seconds
        ));
        out.push_str(&format!(
            "  {:<22}{:.2e} FLOPs, ${:.4} at ${}/h  (DeepSeek-R1: {}K H800 GPU-hours, ${}K)\n",
            "cost",
            self.flops,
            self.dollars,
            self.price_per_hour,
            DEEPSEEK_R1_GPU_HOURS / 1000.0,
            DEEPSEEK_R1_DOLLARS / 1000.0
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> DemoSummary {
        DemoSummary {
            seed: 0,
            digits: 4,
            parameters: 800_000,
            base_accuracy: 0.29,
            final_accuracy: 0.95,
            base_maj_accuracy: 0.3,
            final_maj_accuracy: 0.97,
            base_mean_length: 11.0,
            final_mean_length: 44.0,
            base_think_share: 0.09,
            final_think_share: 1.0,
            steps: 60,
            pretrain_steps: 500,
            base_check: BaseCheck {
                threshold: 0.9,
                checks: vec![GateCheck {
                    step: 400,
                    think_accuracy: 0.95,
                }],
                passed: true,
                extended: false,
                think_accuracy: 0.93,
                direct_accuracy: 0.2,
            },
            verdict: Verdict::Aha,
            seconds: 200.0,
            pretrain_seconds: 120.0,
            grpo_seconds: 60.0,
            eval_seconds: 15.0,
            flops: 1.5e13,
            dollars: 0.0056,
            price_per_hour: 0.1,
            base_checkpoint: "runs/demo/base".into(),
            final_checkpoint: "runs/demo/final".into(),
            report: "runs/demo/report.html".into(),
        }
    }

    #[test]
    fn table_shows_the_headline() {
        let t = summary().table();
        assert!(t.contains("29.0%") && t.contains("95.0%"), "{t}");
        assert!(t.contains("+66.0 points"), "{t}");
        assert!(t.contains("147K H800"), "{t}");
        assert!(
            t.contains("93.0% when made to think") && t.contains("aha:"),
            "{t}"
        );
        assert!(!t.contains("NEVER LEARNED"), "{t}");
    }

    #[test]
    fn a_base_model_that_cannot_think_is_said_so_first() {
        let mut s = summary();
        s.base_check.passed = false;
        s.verdict = Verdict::BaseNeverLearned;
        let t = s.table();
        assert!(
            t.trim_start().starts_with(
                "THE BASE MODEL NEVER LEARNED THE WRITTEN METHOD: RL CANNOT CREATE IT"
            ),
            "{t}"
        );
        assert!(t.contains("not reached"), "{t}");
    }

    #[test]
    fn json_has_the_required_fields() {
        let dir = std::env::temp_dir().join(format!("aha-summary-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = summary().write(&dir).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for key in [
            "base_accuracy",
            "final_accuracy",
            "base_mean_length",
            "final_mean_length",
            "steps",
            "seconds",
            "flops",
            "dollars",
            "final_checkpoint",
        ] {
            assert!(v.get(key).is_some(), "summary.json lacks {key}");
        }
        let back: DemoSummary = serde_json::from_value(v).unwrap();
        assert_eq!(back, summary());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
