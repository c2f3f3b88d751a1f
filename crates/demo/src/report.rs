//! `report.html`: the demo's story on one self-contained page.
//!
//! Headline numbers (base vs after GRPO), the curves (inline SVG), sample completions before and
//! after on the same held-out prompts, the settings and why, and the cost next to DeepSeek's.
//! The page is the minijinja template `report.html.j2`, which escapes everything it prints
//! (completions are full of tags); this file picks the curves and formats numbers. It measures
//! nothing.

use std::path::{Path, PathBuf};

use minijinja::{Environment, Error, Output, State, Value};
use serde::Serialize;

use crate::config::DemoConfig;
use crate::plot::{layout, Figure, LinePlot, Series, PALETTE};
use crate::summary::{
    DemoSummary, Evaluation, Sample, StepPoint, Verdict, DEEPSEEK_R1_DOLLARS, DEEPSEEK_R1_GPU_HOURS,
};
use crate::DemoError;

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    pub config: &'a DemoConfig,
    pub summary: &'a DemoSummary,
    pub base: &'a Evaluation,
    pub trained: &'a Evaluation,
    pub steps: &'a [StepPoint],
    pub samples_before: &'a [Sample],
    pub samples_after: &'a [Sample],
    /// What the corpus held, measured: (think share, accuracy).
    pub corpus_think_share: f64,
    pub corpus_accuracy: f64,
}

const TEMPLATE: &str = include_str!("report.html.j2");

/// A plotted curve and the caption under it.
#[derive(Debug, Clone, Serialize)]
struct Curve {
    caption: &'static str,
    figure: Figure,
}

/// The template's context: the run's records as they are, plus what the page derives from them.
#[derive(Serialize)]
struct Page<'a> {
    s: &'a DemoSummary,
    c: &'a DemoConfig,
    base: &'a Evaluation,
    trained: &'a Evaluation,
    samples_before: &'a [Sample],
    samples_after: &'a [Sample],
    corpus_think_share: f64,
    corpus_accuracy: f64,
    curves: Vec<Curve>,
    verdict: &'static str,
    aha: bool,
    /// The temperature is an `f32`: printed from its own type, as the config states it.
    temperature: String,
    vocabulary: usize,
    /// Textbook steps actually taken: the gate may have added some.
    textbook_steps: usize,
    /// The first step whose training accuracy stood 30 points above step 0's.
    first_big_step: Option<usize>,
    deepseek_kilo_gpu_hours: f64,
    deepseek_kilo_dollars: f64,
}

/// The curves per GRPO step: accuracy and think share, reward, length, KL to the base model.
fn curves(steps: &[StepPoint]) -> Vec<Curve> {
    let series = |label: &str, f: fn(&StepPoint) -> f64, color: usize| Series {
        label: label.into(),
        points: steps.iter().map(|p| (p.step as f64, f(p))).collect(),
        color: PALETTE[color],
    };
    let plot = |title: &str, y_label: &str, series: Vec<Series>, y_range| LinePlot {
        title: title.into(),
        x_label: "GRPO step".into(),
        y_label: y_label.into(),
        series,
        y_range,
    };
    let unit = Some((0.0, 1.0));
    [
        (
            "Training accuracy and think share per GRPO step",
            plot(
                "Accuracy and think share",
                "share of rollouts",
                vec![
                    series("accuracy", |p| p.accuracy, 0),
                    series("think share", |p| p.think_share, 1),
                ],
                unit,
            ),
        ),
        (
            "Mean reward per GRPO step",
            plot(
                "Mean reward",
                "reward",
                vec![series("reward", |p| p.reward, 0)],
                unit,
            ),
        ),
        (
            "Mean response length (tokens) per GRPO step",
            plot(
                "Mean response length",
                "tokens",
                vec![series("length", |p| p.mean_length, 2)],
                None,
            ),
        ),
        (
            "KL(policy || base) on sampled tokens, per GRPO step (not optimised)",
            plot(
                "KL to the base model",
                "nats per token",
                vec![series("KL", |p| p.kl, 3)],
                None,
            ),
        ),
    ]
    .into_iter()
    .map(|(caption, plot)| Curve {
        caption,
        figure: layout(&plot),
    })
    .collect()
}

/// Prints floats as Rust does (`1`, not `1.0`); everything else as minijinja does, escaped.
fn format_value(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    match f64::try_from(value.clone()) {
        Ok(x) if value.is_number() && !value.is_integer() => {
            out.write_fmt(format_args!("{x}")).map_err(Error::from)
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// The template's environment: HTML auto-escaping (from the `.html.j2` name) and the number
/// filters.
fn environment() -> Result<Environment<'static>, Error> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_formatter(format_value);
    env.add_filter("pct", |x: Option<f64>| {
        x.map_or_else(|| "—".to_string(), |x| format!("{:.1}%", 100.0 * x))
    });
    env.add_filter("fixed", |x: f64, n: usize| format!("{x:.n$}"));
    env.add_filter("sci", |x: f64, n: usize| format!("{x:.n$e}"));
    env.add_filter("signed", |x: f64, n: usize| format!("{x:+.n$}"));
    env.add_template("report.html.j2", TEMPLATE)?;
    Ok(env)
}

/// Renders the page.
pub fn render(r: &ReportInput<'_>) -> Result<String, DemoError> {
    let (s, c) = (r.summary, r.config);
    let first = r.steps.first().map_or(0.0, |f| f.accuracy);
    let page = Page {
        s,
        c,
        base: r.base,
        trained: r.trained,
        samples_before: r.samples_before,
        samples_after: r.samples_after,
        corpus_think_share: r.corpus_think_share,
        corpus_accuracy: r.corpus_accuracy,
        curves: curves(r.steps),
        verdict: s.verdict.message(),
        aha: s.verdict == Verdict::Aha,
        temperature: c.grpo.temperature.to_string(),
        vocabulary: aha_model::char_tokenizer::vocabulary().len(),
        textbook_steps: s
            .pretrain_steps
            .saturating_sub(c.pretrain.steps - c.pretrain.skill_steps),
        first_big_step: r
            .steps
            .iter()
            .find(|p| p.accuracy >= first + 0.3)
            .map(|p| p.step),
        deepseek_kilo_gpu_hours: DEEPSEEK_R1_GPU_HOURS / 1000.0,
        deepseek_kilo_dollars: DEEPSEEK_R1_DOLLARS / 1000.0,
    };
    environment()
        .and_then(|env| env.get_template("report.html.j2")?.render(&page))
        .map_err(DemoError::Report)
}

/// Writes `report.html` into `dir`.
pub fn write(r: &ReportInput<'_>, dir: &Path) -> Result<PathBuf, DemoError> {
    let path = dir.join("report.html");
    std::fs::write(&path, render(r)?).map_err(|source| DemoError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_shows_numbers_samples_and_plots() {
        let eval = |acc: f64, len: f64| Evaluation {
            problems: 100,
            k: 4,
            pass_at_1: acc,
            maj_at_k: acc,
            think_share: 0.5,
            malformed_share: 0.0,
            mean_length: len,
            think_accuracy: Some(1.0),
            direct_accuracy: None,
        };
        let (base, trained) = (eval(0.29, 11.0), eval(0.95, 44.0));
        let summary: DemoSummary = serde_json::from_value(serde_json::json!({
            "seed": 0, "digits": 4, "parameters": 800000, "base_accuracy": 0.29,
            "final_accuracy": 0.95, "base_maj_accuracy": 0.3, "final_maj_accuracy": 0.96,
            "base_mean_length": 11.0, "final_mean_length": 44.0, "base_think_share": 0.09,
            "final_think_share": 1.0, "steps": 60, "pretrain_steps": 600, "seconds": 200.0,
            "pretrain_seconds": 100.0, "grpo_seconds": 80.0, "eval_seconds": 10.0,
            "flops": 1e13, "dollars": 0.005, "price_per_hour": 0.1,
            "base_checkpoint": "b", "final_checkpoint": "f", "report": "r",
            "base_check": {"threshold": 0.9, "checks": [], "passed": true, "extended": false,
                           "think_accuracy": 0.93, "direct_accuracy": 0.2},
            "verdict": "aha"
        }))
        .unwrap();
        let sample = Sample {
            prompt: "Q:4821+5377=".into(),
            completion: "<answer>9198</answer>".into(),
            answer: "10198".into(),
            correct: false,
        };
        let steps: Vec<StepPoint> = (0..10)
            .map(|i| StepPoint {
                step: i,
                reward: 0.1 * i as f64,
                accuracy: 0.1 * i as f64,
                mean_length: 10.0 + i as f64,
                think_share: 0.05 * i as f64,
                kl: 0.01 * i as f64,
                seconds: i as f64,
            })
            .collect();
        let html = render(&ReportInput {
            config: &DemoConfig::standard(),
            summary: &summary,
            base: &base,
            trained: &trained,
            steps: &steps,
            samples_before: std::slice::from_ref(&sample),
            samples_after: &[],
            corpus_think_share: 0.1,
            corpus_accuracy: 0.27,
        })
        .unwrap();
        assert!(html.contains("29.0%") && html.contains("95.0%"));
        assert!(html.contains("+66.0 points"));
        assert!(html.contains("&lt;answer&gt;9198&lt;&#x2f;answer&gt;"));
        assert!(!html.contains("<answer>"));
        assert!(html.contains("temperature 1 ") && html.contains("lr 0.00015."));
        assert!(html.contains("147K H800") && html.contains("1.00e13 FLOPs"));
        assert!(html.contains("at step 3."));
        // Four curves drawn into the page, the first with its legend; no file beside it.
        assert_eq!(html.matches("<svg ").count(), 4);
        assert_eq!(html.matches("</svg>").count(), 4);
        assert!(html.contains(">think share</text>"));
        assert!(!html.contains(".png"));
        assert!(html.contains("up-weighted one the base model already had"));
    }
}
