//! `aha bench`: throughput on fixed reference shapes, printed as one table or (`--json`) as one
//! JSON object per row.
//!
//! Each benchmark is a function returning a [`Row`]; [`run`] calls the ones selected with
//! `--shapes` and prints them together. Rows: a square matmul (the machine's practical fp32 peak,
//! which the other rows are measured against), the training step on two model shapes
//! (`train_step.rs`), rollouts (`generation.rs`) and a whole GRPO step (`grpo_step.rs`). Models
//! are random (seeded) unless `--model DIR` names a checkpoint for `generate` and `grpo-step`.
//! aha prints no ratio against another program's figure: `bench/compare.sh` at the repository
//! root runs the PyTorch and TRL peers alternately with aha and prints the ratios.

mod generation;
mod grpo_step;
mod memory;
mod report;
mod train_step;

use std::path::PathBuf;

use std::time::Instant;

/// What `--shapes` can select.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bench {
    /// 1024³ f32 matmul: the practical peak the other rows are compared with.
    Matmul,
    /// Training step, d_model 256, 4 layers, 8/2 heads, SwiGLU 688, vocab 1024, batch 8×256.
    TrainSmall,
    /// Training step, d_model 1024, 4 layers, 16/4 heads, SwiGLU 2816, vocab 1024, batch 4×256.
    TrainLarge,
    /// Rollouts, reference shape: 16 prompts × 32 tokens, 128 new tokens each
    /// (--generate-new-tokens).
    Generate,
    /// Rollouts, reference shape: 8 prompts × 256 tokens, G = 16, 64 new: prefill once, fork.
    GroupShared,
    /// As group-shared but each of the 128 rows prefilled on its own (no prefix sharing).
    GroupUnshared,
    /// A whole GRPO step, reference shape: 8 prompts × G = 8 × 128 new tokens, β = 0, one pass.
    GrpoStep,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Timed iterations per row (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Untimed iterations before timing (allocator and thread-pool warmup).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Rows to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Bench::Matmul, Bench::TrainSmall, Bench::TrainLarge, Bench::Generate, Bench::GroupShared, Bench::GroupUnshared, Bench::GrpoStep])]
    pub shapes: Vec<Bench>,
    /// Seed for the random weights and token ids.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A Hugging Face checkpoint directory for the `generate` and `grpo-step` rows (instead of a
    /// random model of the reference shape).
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub device: crate::args::DeviceArgs,
    /// Print one JSON object per row on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// generate: new tokens per completion (the 0.5B comparison in bench/ uses 64).
    #[arg(long, default_value_t = 128, value_parser = crate::args::positive)]
    pub generate_new_tokens: usize,
    /// grpo-step: prompts per step.
    #[arg(long, default_value_t = 8)]
    pub grpo_prompts: usize,
    /// grpo-step: completions per prompt (G).
    #[arg(long, default_value_t = 8)]
    pub grpo_group: usize,
    /// grpo-step: new tokens per completion (EOS ignored, so every completion has this many).
    #[arg(long, default_value_t = 128)]
    pub grpo_new_tokens: usize,
    /// grpo-step: sequences per forward/backward pass (activation memory grows with it); default
    /// all of the step's, at most 16.
    #[arg(long, value_parser = crate::args::positive)]
    pub grpo_micro_batch: Option<usize>,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    /// Shape summary, e.g. `d256 L4 h8/2 ff688 V1024 8x256`.
    pub shape: String,
    /// Median seconds per iteration.
    pub seconds: f64,
    pub tokens_per_s: Option<f64>,
    pub gflop_per_s: Option<f64>,
    /// The numbers behind `detail` by name (`fwd_ms`, `cpu_s`, …), for `--json`.
    pub fields: Vec<(&'static str, f64)>,
    /// Where the time goes, e.g. `fwd 120 ms, bwd 210 ms, opt 15 ms`.
    pub detail: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.steps > 0, "--steps must be at least 1");
    let timing = Timing {
        warmup: args.warmup,
        steps: args.steps,
    };
    let device = args.device.device()?;
    let on = (&device, args.device.dtype);
    let mut rows = Vec::new();
    // The peak is measured whenever another row is asked for, so fractions are of this run.
    let wants_other = args.shapes.iter().any(|s| *s != Bench::Matmul);
    let mut gen_model = None;
    if args.shapes.contains(&Bench::Matmul) || wants_other {
        let row = measured(|| train_step::matmul_row(1024, &device, timing))?;
        if args.json && args.shapes.contains(&Bench::Matmul) {
            report::print_json(&row, None)?;
        }
        rows.push(row);
    }
    for shape in &args.shapes {
        let row = match shape {
            Bench::Matmul => continue,
            Bench::TrainSmall => measured(|| {
                train_step::train_row(train_step::TrainShape::small(), args.seed, on, timing)
            })?,
            Bench::TrainLarge => measured(|| {
                train_step::train_row(train_step::TrainShape::large(), args.seed, on, timing)
            })?,
            Bench::GrpoStep => {
                let shape = grpo_step::GrpoShape {
                    prompts: args.grpo_prompts,
                    group: args.grpo_group,
                    new_tokens: args.grpo_new_tokens,
                    micro_batch: args.grpo_micro_batch,
                };
                measured(|| {
                    grpo_step::grpo_row(args.model.as_deref(), shape, args.seed, on, timing)
                })?
            }
            Bench::Generate | Bench::GroupShared | Bench::GroupUnshared => {
                let shape = match shape {
                    Bench::GroupShared => generation::GenShape::group(false),
                    Bench::GroupUnshared => generation::GenShape::group(true),
                    _ => generation::GenShape {
                        new_tokens: args.generate_new_tokens,
                        ..generation::GenShape::decode()
                    },
                };
                if gen_model.is_none() {
                    gen_model = Some(generation::bench_model(
                        args.model.as_deref(),
                        args.seed,
                        on,
                    )?);
                }
                let Some(model) = &gen_model else { continue };
                measured(|| generation::generation_row(model, shape, args.seed, timing))?
            }
        };
        if args.json {
            // Rows go out as they finish, so a long run shows progress and a crash keeps them.
            report::print_json(&row, rows.first())?;
        }
        rows.push(row);
    }
    if !args.json {
        report::print_table(&rows);
    }
    Ok(())
}

/// Runs one row with the peak-memory counter reset first, and adds the row's peak RSS.
fn measured(f: impl FnOnce() -> anyhow::Result<Row>) -> anyhow::Result<Row> {
    memory::reset_peak();
    let mut row = f()?;
    if let Some(bytes) = memory::peak_rss_bytes() {
        let mib = bytes as f64 / (1024.0 * 1024.0);
        row.fields.push(("peak_rss_mib", mib));
        row.detail.push_str(&format!("; peak RSS {mib:.0} MiB"));
    }
    Ok(row)
}

/// How many iterations to run and time.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: usize,
    pub steps: usize,
}

impl Timing {
    /// Run `f` warmup + steps times; return the per-step median of each phase it reports.
    /// `f` returns the seconds of its phases (one entry per phase, same count every call).
    pub fn measure(
        &self,
        mut f: impl FnMut() -> anyhow::Result<Vec<f64>>,
    ) -> anyhow::Result<Vec<f64>> {
        for _ in 0..self.warmup {
            f()?;
        }
        let mut samples: Vec<Vec<f64>> = Vec::new();
        for _ in 0..self.steps {
            let phases = f()?;
            if samples.is_empty() {
                samples = vec![Vec::new(); phases.len()];
            }
            for (s, p) in samples.iter_mut().zip(phases) {
                s.push(p);
            }
        }
        Ok(samples.into_iter().map(median).collect())
    }
}

/// Seconds since `start`.
pub fn since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// CPU seconds this process has used (user + system, all threads), from `/proc/self/stat`; `None`
/// where that file does not exist. On a shared machine wall time includes waiting for a core;
/// CPU time per step does not, so both are reported.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux ABI Rust targets.
    Some(ticks / 100.0)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if !n.is_multiple_of(2) {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
