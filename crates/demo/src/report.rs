//! `report.html`: the demo's story on one self-contained page.
//!
//! Headline numbers (base vs after GRPO), the curves (PNG files beside the page), sample
//! completions before and after on the same held-out prompts, the settings and why, and the cost
//! next to DeepSeek's. All text from the model is HTML-escaped (completions are full of tags).
//! This file formats; it measures nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::DemoConfig;
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
    /// (file name relative to the report, caption)
    pub plots: &'a [(String, String)],
    /// What the corpus held, measured: (think share, accuracy).
    pub corpus_think_share: f64,
    pub corpus_accuracy: f64,
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn opt_pct(x: Option<f64>) -> String {
    x.map(pct).unwrap_or_else(|| "—".into())
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;\
padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0}\
td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f4f4f4}\
td:first-child,th:first-child{text-align:left}code,pre{background:#f6f6f6;font-size:90%}\
pre{padding:6px;white-space:pre-wrap;word-break:break-all}.ok{color:#1a7f37}.bad{color:#b42318}\
figure{display:inline-block;margin:0.5em}figcaption{font-size:90%;color:#555}";

/// Renders the page.
pub fn render(r: &ReportInput<'_>) -> String {
    let (s, c) = (r.summary, r.config);
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>aha demo: R1-Zero in \
         miniature</title><style>{STYLE}</style></head><body>\n<h1>aha demo: R1-Zero's \"aha \
         moment\" in miniature</h1>"
    );
    let bc = &s.base_check;
    let _ = writeln!(
        h,
        "<p class=\"{cls}\"><b>{verdict}.</b> Base model before RL, made to think: {th} right; \
         made to answer directly: {di} (the gate asks {thr} when thinking; {gate}).</p>",
        cls = if bc.passed { "ok" } else { "bad" },
        verdict = escape(s.verdict.message()),
        th = pct(bc.think_accuracy),
        di = pct(bc.direct_accuracy),
        thr = pct(bc.threshold),
        gate = match (bc.passed, bc.extended) {
            (false, _) => format!("not reached within {} pretraining steps", s.pretrain_steps),
            (true, true) => format!("pretraining extended to {} steps", s.pretrain_steps),
            (true, false) => "reached".into(),
        },
    );
    let _ = writeln!(
        h,
        "<p>A {params}-parameter base model, pretrained here on {digits}-digit additions that \
         were mostly answered by guessing, was trained with GRPO using <b>only a rule-checked \
         reward</b> (1 for a well-formed, exactly right answer, else 0) — no supervised reasoning \
         data, no reward for thinking. On held-out problems its accuracy went from \
         <b>{ba}</b> to <b>{fa}</b> ({gain:+.1} points) and its responses from {bl:.1} to \
         {fl:.1} tokens{how} (think share {bt} → {ft}).</p>",
        params = s.parameters,
        digits = s.digits,
        ba = pct(s.base_accuracy),
        fa = pct(s.final_accuracy),
        gain = 100.0 * (s.final_accuracy - s.base_accuracy),
        bl = s.base_mean_length,
        fl = s.final_mean_length,
        bt = pct(s.base_think_share),
        ft = pct(s.final_think_share),
        how = match s.verdict {
            Verdict::Aha => {
                ": it learned to work the columns inside <code>&lt;think&gt;</code> before answering"
            }
            _ => ", but this is not the aha moment (see above)",
        },
    );
    let _ = writeln!(
        h,
        "<p>RL did not teach a new skill: it up-weighted one the base model already had. The \
         corpus held worked solutions ({cts} of documents, always right) among guesses \
         (corpus accuracy {ca}); sampling at temperature {t} sometimes takes the long way, those \
         samples earn the reward more often, and group-relative advantages push probability \
         towards them until thinking is the default.</p>",
        cts = pct(r.corpus_think_share),
        ca = pct(r.corpus_accuracy),
        t = c.grpo.temperature,
    );

    h.push_str("<h2>Held-out evaluation</h2>\n");
    let _ = writeln!(
        h,
        "<p>{} problems never seen in pretraining or GRPO, {} samples each at temperature {} \
         (the R1 protocol: pass@1 is the mean accuracy over the samples, maj@{} the accuracy of \
         the most frequent answer).</p>",
        r.base.problems, r.base.k, c.grpo.temperature, r.base.k
    );
    h.push_str("<table><tr><th></th><th>base model</th><th>after GRPO</th></tr>\n");
    let rows: [(&str, String, String); 7] = [
        ("pass@1", pct(r.base.pass_at_1), pct(r.trained.pass_at_1)),
        (
            &format!("maj@{}", r.base.k),
            pct(r.base.maj_at_k),
            pct(r.trained.maj_at_k),
        ),
        (
            "think share",
            pct(r.base.think_share),
            pct(r.trained.think_share),
        ),
        (
            "mean response length (tokens)",
            format!("{:.1}", r.base.mean_length),
            format!("{:.1}", r.trained.mean_length),
        ),
        (
            "accuracy when thinking",
            opt_pct(r.base.think_accuracy),
            opt_pct(r.trained.think_accuracy),
        ),
        (
            "accuracy when answering directly",
            opt_pct(r.base.direct_accuracy),
            opt_pct(r.trained.direct_accuracy),
        ),
        (
            "malformed responses",
            pct(r.base.malformed_share),
            pct(r.trained.malformed_share),
        ),
    ];
    for (name, a, b) in rows {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{a}</td><td>{b}</td></tr>",
            escape(name)
        );
    }
    h.push_str("</table>\n");

    h.push_str("<h2>Training curves</h2>\n<p>Per GRPO step, on that step's own rollouts.</p>\n");
    for (file, caption) in r.plots {
        let _ = writeln!(
            h,
            "<figure><img src=\"{f}\" width=\"480\" alt=\"{cap}\"><figcaption>{cap} \
             (<code>{f}</code>)</figcaption></figure>",
            f = escape(file),
            cap = escape(caption)
        );
    }
    if let Some(first_big) = r
        .steps
        .iter()
        .find(|p| p.accuracy >= r.steps.first().map_or(0.0, |f| f.accuracy) + 0.3)
    {
        let _ = writeln!(
            h,
            "<p>Training accuracy first stood 30 points above step 0's at step {}.</p>",
            first_big.step
        );
    }

    h.push_str("<h2>Samples on the same held-out prompts</h2>\n");
    samples_table(&mut h, "Base model", r.samples_before);
    samples_table(&mut h, "After GRPO", r.samples_after);

    cost_section(&mut h, s);
    settings_section(&mut h, r);
    h.push_str("</body></html>\n");
    h
}

fn samples_table(h: &mut String, title: &str, samples: &[Sample]) {
    let _ = writeln!(
        h,
        "<h3>{}</h3><table><tr><th>prompt</th><th>completion</th><th>answer</th><th></th></tr>",
        escape(title)
    );
    for s in samples {
        let (class, mark) = if s.correct {
            ("ok", "right")
        } else {
            ("bad", "wrong")
        };
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td style=\"text-align:left\"><pre>{}</pre></td>\
             <td>{}</td><td class=\"{class}\">{mark}</td></tr>",
            escape(&s.prompt),
            escape(&s.completion),
            escape(&s.answer)
        );
    }
    h.push_str("</table>\n");
}

fn cost_section(h: &mut String, s: &DemoSummary) {
    let _ = writeln!(
        h,
        "<h2>Cost</h2>\n<table><tr><th></th><th>this run</th><th>DeepSeek-R1 (reported)</th></tr>\n\
         <tr><td>hardware time</td><td>{:.0} s of this machine ({:.0} s pretraining, {:.0} s \
         GRPO, {:.0} s evaluation)</td><td>{}K H800 GPU-hours</td></tr>\n\
         <tr><td>arithmetic</td><td>{:.2e} FLOPs</td><td>—</td></tr>\n\
         <tr><td>dollars</td><td>${:.4} at ${}/hour</td><td>${}K at $2/GPU-hour</td></tr>\n\
         </table>\n<p>FLOPs count the model's matrix multiplications and attention (2 per \
         multiply-add) over every token generated, scored or trained on; a training token costs \
         three forward passes.</p>",
        s.seconds,
        s.pretrain_seconds,
        s.grpo_seconds,
        s.eval_seconds,
        DEEPSEEK_R1_GPU_HOURS / 1000.0,
        s.flops,
        s.dollars,
        s.price_per_hour,
        DEEPSEEK_R1_DOLLARS / 1000.0,
    );
}

fn settings_section(h: &mut String, r: &ReportInput<'_>) {
    let c = r.config;
    let direct: Vec<String> = c.mix.direct_right.iter().map(|p| pct(*p)).collect();
    let _ = writeln!(
        h,
        "<h2>How it was set up</h2>\n<ul>\n\
         <li><b>Task.</b> Prompt <code>Q:4821+5377=</code> (the R1-Zero template shrunk to the \
         task). A thinking response is <code>&lt;think&gt;1+7+0=08 2+7+0=09 8+3+0=11 4+5+1=10&lt;/think&gt;\
         &lt;answer&gt;10198&lt;/answer&gt;</code>; a direct one is \
         <code>&lt;answer&gt;10198&lt;/answer&gt;</code>.</li>\n\
         <li><b>Base model.</b> Qwen2-style decoder, hidden size {d}, {l} layers, {hd} heads, \
         {p} parameters, a {v}-token character tokenizer; pretrained {ps} steps × {pb} documents \
         (loss on every token, lr {plr}): the first {sk} steps from a textbook-like mix with \
         {sks} worked solutions, which teaches the column work, the rest from the mix \
         below, which sets the preference for answering directly.</li>\n\
         <li><b>Corpus.</b> {ts} of documents think (always right); the rest answer directly, \
         right with probability {dr} for 0, 1, 2+ carries, otherwise giving the sum with the \
         carries dropped.</li>\n\
         <li><b>GRPO.</b> {gs} steps × {gb} prompts × {gg} samples at temperature {gt}; reward \
         1 only for a well-formed, exactly right answer (thinking optional, never rewarded by \
         itself); mean/std group advantages, groups with equal rewards skipped, one on-policy \
         pass, no KL penalty (KL to the base model is measured, not optimised), lr {glr}.</li>\n\
         <li><b>Seed</b> {seed}: the same seed gives the same run.</li>\n</ul>\n\
         <p>Why the mix matters (seen in a PyTorch prototype): with thinking rarer (2%) or with \
         direct answers sometimes right on hard problems, RL sharpens the guesser instead — \
         accuracy rises a little but responses stay short. A learning rate of 1e-3 collapses to \
         0% (no reward left to learn from); 4e-4 erodes the thinking skill.</p>",
        d = c.model.hidden_size,
        l = c.model.layers,
        hd = c.model.heads,
        p = r.summary.parameters,
        v = aha_model::char_tokenizer::vocabulary().len(),
        ps = r.summary.pretrain_steps,
        pb = c.pretrain.batch_size,
        plr = c.pretrain.lr,
        // Textbook steps actually taken: the gate may have added some.
        sk = r.summary.pretrain_steps - (c.pretrain.steps - c.pretrain.skill_steps),
        sks = pct(c.pretrain.skill_think_share),
        ts = pct(c.mix.think_share),
        dr = direct.join(" / "),
        gs = c.grpo.steps,
        gb = c.grpo.prompts_per_step,
        gg = c.grpo.group_size,
        gt = c.grpo.temperature,
        glr = c.grpo.lr,
        seed = c.seed,
    );
}

/// Writes `report.html` into `dir`.
pub fn write(r: &ReportInput<'_>, dir: &Path) -> Result<PathBuf, DemoError> {
    let path = dir.join("report.html");
    std::fs::write(&path, render(r)).map_err(|source| DemoError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_tags() {
        assert_eq!(
            escape("<think>1+7=8</think> & \"x\""),
            "&lt;think&gt;1+7=8&lt;/think&gt; &amp; &quot;x&quot;"
        );
    }

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
        let plots = [("accuracy.png".to_string(), "Accuracy".to_string())];
        let html = render(&ReportInput {
            config: &DemoConfig::standard(),
            summary: &summary,
            base: &base,
            trained: &trained,
            steps: &[],
            samples_before: std::slice::from_ref(&sample),
            samples_after: &[],
            plots: &plots,
            corpus_think_share: 0.1,
            corpus_accuracy: 0.27,
        });
        assert!(html.contains("29.0%") && html.contains("95.0%"));
        assert!(html.contains("+66.0 points"));
        assert!(html.contains("&lt;answer&gt;9198&lt;/answer&gt;"));
        assert!(!html.contains("<answer>"));
        assert!(html.contains("src=\"accuracy.png\""));
        assert!(html.contains("147K H800"));
        assert!(html.contains("up-weighted one the base model already had"));
    }
}
