//! `aha reward`: score a JSONL or Parquet file of completions with rule-based verifiers, a reward
//! program (`--command`) or a reward server (`--url`). Rows are read by the reader every command
//! shares (`aha_train::data::rows`); aha-verify scores them.

use std::io::Write;
use std::path::PathBuf;

use aha_train::data::rows::{read_rows, Columns};
use anyhow::Context;

use crate::args::{check_output, open_output, TaskName, VerifierOptions};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Input rows (JSONL, or Parquet by extension): {\"completion\": \"...\", \"answer\": \"...\"} (countdown: \"numbers\" and \"target\";
code: \"tests\": [{\"input\": stdin, \"output\": expected stdout}, ...]), as
`aha sample` writes them, or {\"completions\": [...], \"answer\"} as `aha eval --output` does.
Output lines, one per completion, in input order:
{\"reward\": float|null, \"correct\": bool|null, \"components\": {...}}.
A reward of null means no verifier could judge the line, e.g. it has no \"answer\": it is
excluded from the mean, never counted as 0.
--command and --url each add a term of weight 1 (beside --task's, if given); they see every
field of the line, in batches of 256 lines. Their protocols: docs/rewards.md.")]
pub struct Args {
    /// Which verifier judges the completions (optional with --command or --url).
    #[arg(long, value_enum, required_unless_present_any = ["command", "url"])]
    task: Option<TaskName>,
    #[command(flatten)]
    options: VerifierOptions,
    /// A reward program, started once and sent one JSON line per completion, e.g.
    /// "python3 my_reward.py" (split like a shell command line).
    #[arg(long)]
    command: Option<String>,
    /// A reward server: each batch is POSTed to this http:// URL as {"items": [...]} and the
    /// reply read as {"rewards": [...]}; retried 3 times with backoff on connection errors and 5xx.
    #[arg(long)]
    url: Option<String>,
    /// Seconds the reward program or server may take to answer one batch.
    #[arg(long, default_value_t = 60.0)]
    timeout_s: f64,
    /// Completions: JSONL, or Parquet (`.parquet`).
    #[arg(long)]
    input: PathBuf,
    /// Where to write the scored lines (default: stdout).
    #[arg(long)]
    output: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    check_output(args.output.as_deref())?;
    let task = args.task.map(aha_verify::Task::from);
    let mut external = Vec::new();
    if let Some(line) = &args.command {
        let command = shlex::split(line)
            .filter(|words| !words.is_empty())
            .with_context(|| {
                format!("--command {line:?}: not a command line (unbalanced quotes?)")
            })?;
        external.push(aha_verify::RewardSpec::Command {
            weight: 1.0,
            command,
            timeout_s: args.timeout_s,
        });
    }
    if let Some(url) = &args.url {
        external.push(aha_verify::RewardSpec::Http {
            weight: 1.0,
            url: url.clone(),
            timeout_s: args.timeout_s,
            retries: 3,
            backoff_s: 0.5,
        });
    }
    let (rows, _) = read_rows(&args.input, Columns::All)?;
    let name = args.input.display().to_string();
    let options = args.options.task_options();
    let mut specs = task.map_or(Vec::new(), |t| t.reward_with(&options).specs().to_vec());
    specs.extend(external);
    let reward = aha_verify::Reward::new(specs)?;
    let (_, mut out) = open_output(args.output.as_deref())?;
    let rows = rows.into_iter().map(|r| (r.line, r.fields));
    let summary = aha_verify::score_rows(&reward, rows, &name, &mut out)
        .with_context(|| format!("scoring {name} (lines before the failing batch were written)"))?;
    out.flush().context("writing the scored lines")?;
    let accuracy = match summary.correct_judged {
        0 => "n/a".to_string(),
        n => format!("{:.1}%", 100.0 * summary.correct as f64 / n as f64),
    };
    let mean = summary
        .mean_reward
        .map_or("n/a".to_string(), |m| format!("{m:.4}"));
    eprintln!(
        "scored {} lines: {} judged, mean reward {mean}, accuracy {accuracy}",
        summary.lines, summary.judged
    );
    for line in &summary.reports {
        eprintln!("{line}");
    }
    Ok(())
}
