//! `aha bench`: throughput on fixed reference shapes, printed as one table.
//!
//! Each benchmark is a function returning [`Row`]s; [`run`] calls the ones selected with
//! `--shapes` and prints them together. Rows: a square matmul (the machine's practical fp32 peak,
//! which the other rows are measured against) and the training step on two model shapes
//! (`train_step.rs`). Models are random (seeded), not read from files. Benchmarks are not tests:
//! `bench/README.md` at the repository root says how to compare against PyTorch.

mod generation;
mod grpo_step;
mod train_step;

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
    /// Rollouts, reference shape: 16 prompts × 32 tokens, 128 new tokens each.
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
    #[command(flatten)]
    pub device: crate::args::DeviceArgs,
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
    let dtype = args.device.dtype;
    let mut rows = Vec::new();
    // The peak is measured whenever a training row is asked for, so fractions are of this run.
    let wants_train = args.shapes.iter().any(|s| *s != Bench::Matmul);
    let mut gen_model = None;
    if args.shapes.contains(&Bench::Matmul) || wants_train {
        rows.push(train_step::matmul_row(1024, &device, timing)?);
    }
    for shape in &args.shapes {
        match shape {
            Bench::Matmul => {}
            Bench::TrainSmall => rows.push(train_step::train_row(
                train_step::TrainShape::small(),
                args.seed,
                (&device, dtype),
                timing,
            )?),
            Bench::TrainLarge => rows.push(train_step::train_row(
                train_step::TrainShape::large(),
                args.seed,
                (&device, dtype),
                timing,
            )?),
            Bench::GrpoStep => rows.push(grpo_step::grpo_row(args.seed, (&device, dtype), timing)?),
            Bench::Generate | Bench::GroupShared | Bench::GroupUnshared => {
                let shape = match shape {
                    Bench::GroupShared => generation::GenShape::group(false),
                    Bench::GroupUnshared => generation::GenShape::group(true),
                    _ => generation::GenShape::decode(),
                };
                if gen_model.is_none() {
                    gen_model = Some(generation::reference_model(args.seed, (&device, dtype))?);
                }
                if let Some(model) = &gen_model {
                    rows.push(generation::generation_row(model, shape, args.seed, timing)?);
                }
            }
        }
    }
    print_table(&rows);
    Ok(())
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if !n.is_multiple_of(2) {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn print_table(rows: &[Row]) {
    let peak = rows
        .iter()
        .find(|r| r.name == train_step::MATMUL_ROW)
        .and_then(|r| r.gflop_per_s);
    let fmt_opt = |v: Option<f64>, prec: usize| match v {
        Some(v) => format!("{v:.prec$}"),
        None => "-".to_string(),
    };
    let header = [
        "bench",
        "shape",
        "median s",
        "tokens/s",
        "GFLOP/s",
        "% peak",
        "breakdown",
    ];
    let lines: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let frac = match (r.gflop_per_s, peak) {
                (Some(g), Some(p)) if p > 0.0 => Some(100.0 * g / p),
                _ => None,
            };
            [
                r.name.clone(),
                r.shape.clone(),
                format!("{:.4}", r.seconds),
                fmt_opt(r.tokens_per_s, 0),
                fmt_opt(r.gflop_per_s, 1),
                fmt_opt(frac, 0),
                r.detail.clone(),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for l in &lines {
        for (w, c) in width.iter_mut().zip(l) {
            *w = (*w).max(c.chars().count());
        }
    }
    let print = |cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            // Text columns left-aligned, numbers right-aligned.
            if i < 2 || i == 6 {
                s.push_str(&format!("{c:<w$}  "));
            } else {
                s.push_str(&format!("{c:>w$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    print(&header.map(String::from));
    print(&width.map(|w| "-".repeat(w)));
    for l in &lines {
        print(l);
    }
    if peak.is_some() {
        println!(
            "% peak: GFLOP/s as a share of the matmul row. Train FLOPs = 3 x forward (forward = \
             2 per multiply-add over every matmul weight incl. the LM head, plus dense T x T \
             attention scores and values, masked half included)."
        );
    }
}
