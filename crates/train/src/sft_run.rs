//! `aha sft`: supervised fine-tuning from a TOML config ([`SftRunConfig`]) and a JSONL (or
//! Parquet) file, in the run layout `aha train` uses ([`crate::run_dir`]).
//!
//! Each line (row) is `{"prompt": …, "completion": …}` (plain text: the prompt is tokenized as
//! is and the completion follows it, then EOS), `{"prompt_ids": […], "completion": …}` (the
//! prompt's token ids as given, as `aha sample` and `aha rejection-sample` write for such
//! prompts) or `{"messages": [{"role", "content"}, …]}`
//! (rendered with the checkpoint's chat template; each assistant turn becomes one example whose
//! prompt is everything before it, so the loss covers assistant tokens only), or `messages` with
//! a `completion` (as `aha sample` writes for a chat prompt: the completion is the next assistant
//! turn). Other fields (`aha rejection-sample`'s reward, `aha sample`'s ids and logprobs) are
//! ignored; rows come from [`crate::data::rows`]. Examples are visited in a seeded shuffle per
//! epoch, so a checkpoint needs only (epoch, position) to resume the same order. At each
//! checkpoint a few of the step's prompts are completed greedily into samples.jsonl.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use aha_model::config::StoredDtype;
use aha_model::load::GenerationConfig;
use aha_model::tokenizer::{ChatMessage, Tokenizer};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::collective::{any_rank, check_replicas, check_run_dir, Collective};
use crate::config::RunConfig;
use crate::data::rows::{read_rows, Columns};
use crate::engine::{generate_groups, SamplingParams};
use crate::grpo::checkpoint::{set_weights, OPTIMIZER_FILE, STATE_FILE};
use crate::metrics::forward_flops;
use crate::optim::UpdateCounters;
use crate::run::{device, load_policy, Policy, RunOptions};
use crate::run_dir::prune_checkpoints;
use crate::run_log::RunLog;
use crate::sft::{Example, SftStepStats, SftTrainer};
use crate::{Error, Result};

pub use crate::sft_config::SftRunConfig;

/// The fields SFT reads; others (`aha rejection-sample`'s reward, `aha sample`'s indices, ids
/// and logprobs, a dataset's answer) are left alone, so those outputs are SFT data as they are.
#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    prompt_ids: Option<Vec<u32>>,
    #[serde(default)]
    completion: Option<String>,
    #[serde(default)]
    messages: Option<Vec<ChatMessage>>,
}

/// Reads and tokenizes the examples of a JSONL or Parquet file (by extension; Parquet columns
/// `prompt` (or `prompt_ids`) and `completion`, or `messages` as `list<struct<role, content>>`);
/// `prompt_ids` must lie below `vocab`, the model's vocabulary. Errors name the file and line
/// (row).
pub fn read_examples(path: &Path, tokenizer: &Tokenizer, vocab: usize) -> Result<Vec<Example>> {
    let bad = |line: usize, message: String| Error::Data {
        path: path.into(),
        line,
        message,
    };
    let mut out = Vec::new();
    let wanted = ["prompt", "prompt_ids", "completion", "messages"];
    let (rows, columns) = read_rows(path, Columns::Only(&wanted))?;
    let has = |c: &str| columns.iter().any(|x| x == c);
    if crate::data::parquet::is_parquet(path)
        && !((has("prompt") || has("prompt_ids")) && has("completion") || has("messages"))
    {
        return Err(bad(
            0,
            format!(
                "no columns `prompt` and `completion`, nor a `messages` column; the file's \
                 columns are: {}",
                columns.join(", ")
            ),
        ));
    }
    for row in rows {
        let line = row.line;
        let row: Line = serde_json::from_value(serde_json::Value::Object(row.fields))
            .map_err(|e| bad(line, e.to_string()))?;
        if let Some(id) = (row.prompt_ids.iter().flatten()).find(|&&t| t as usize >= vocab) {
            return Err(bad(
                line,
                format!(
                    "field `prompt_ids`: token id {id} is out of range for the model's \
                     vocabulary of {vocab}"
                ),
            ));
        }
        push_examples(row, tokenizer, &mut out).map_err(|m| bad(line, m))?;
    }
    if out.is_empty() {
        return Err(bad(0, "no examples".into()));
    }
    Ok(out)
}

/// The examples of one row: one pair, or one per assistant turn of a conversation.
fn push_examples(
    row: Line,
    tokenizer: &Tokenizer,
    out: &mut Vec<Example>,
) -> std::result::Result<(), String> {
    let text = |e: aha_model::Error| e.to_string();
    let prompt = match (row.prompt, row.prompt_ids) {
        (Some(p), None) => Some(tokenizer.encode(&p, true).map_err(text)?),
        (None, ids) => ids,
        (Some(_), Some(_)) => return Err("expected `prompt` or `prompt_ids`, not both".into()),
    };
    match (prompt, row.completion, row.messages) {
        (Some(prompt_ids), Some(c), None) => {
            let mut completion_ids = tokenizer.encode(&c, false).map_err(text)?;
            completion_ids.extend(tokenizer.eos_token_ids().first());
            if prompt_ids.is_empty() {
                return Err("the prompt encodes to no tokens".into());
            }
            out.push(Example {
                prompt_ids,
                completion_ids,
            });
        }
        // `aha sample` on a chat prompt: the completion is the assistant's next turn.
        (None, Some(c), Some(mut msgs)) => {
            msgs.push(ChatMessage::new("assistant", c));
            return push_examples(
                Line {
                    prompt: None,
                    prompt_ids: None,
                    completion: None,
                    messages: Some(msgs),
                },
                tokenizer,
                out,
            );
        }
        (None, None, Some(msgs)) => {
            let before = out.len();
            for (i, m) in msgs.iter().enumerate() {
                if m.role != "assistant" {
                    continue;
                }
                let prefix = tokenizer
                    .apply_chat_template(&msgs[..i], true)
                    .map_err(text)?;
                let full = tokenizer
                    .apply_chat_template(&msgs[..=i], false)
                    .map_err(text)?;
                let p = tokenizer.encode(&prefix, false).map_err(text)?;
                let f = tokenizer.encode(&full, false).map_err(text)?;
                if p.is_empty() || !f.starts_with(&p) {
                    return Err(format!(
                        "assistant turn {i}: the chat template's rendering before the turn \
                         does not tokenize to a prefix of the rendering with it"
                    ));
                }
                out.push(Example {
                    completion_ids: f[p.len()..].to_vec(),
                    prompt_ids: p,
                });
            }
            if out.len() == before {
                return Err("`messages` has no assistant turn".into());
            }
        }
        _ => {
            return Err(
                "expected {\"prompt\" or \"prompt_ids\", \"completion\"} or {\"messages\"}".into(),
            )
        }
    }
    Ok(())
}

/// One line of an SFT run's metrics.jsonl. `step_s`, `tokens_per_s`, `device_hours` and
/// `cost_usd` measure time (`metrics::TIMING_FIELDS`); the rest repeat exactly on a resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftMetrics {
    pub step: usize,
    /// Mean cross-entropy (nats) over the loss tokens.
    pub loss: f64,
    /// Loss tokens in the batch.
    pub tokens: usize,
    pub grad_norm: f64,
    pub lr: f64,
    /// The update was skipped for a non-finite loss or gradient.
    pub skipped: bool,
    pub tokens_per_s: f64,
    pub step_s: f64,
    /// Cumulative FLOPs of the run (forward and backward).
    pub flops: f64,
    pub device_hours: f64,
    pub cost_usd: f64,
}

/// A greedy completion of a training prompt next to its target, written at checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftSample {
    pub step: usize,
    pub prompt: String,
    pub completion: String,
    pub target: String,
}

/// What an SFT checkpoint holds besides weights and optimizer moments (trainer_state.json).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SftState {
    pub step: usize,
    /// Epochs begun; the current one's order is the shuffle seeded by `(seed, epoch - 1)`.
    pub epoch: u64,
    /// Examples of the current epoch consumed.
    pub cursor: usize,
    pub counters: UpdateCounters,
    pub flops: f64,
    pub device_seconds: f64,
}

/// An SFT run takes the options a GRPO run does.
pub type SftOptions = RunOptions;

/// Steps between checks that data-parallel ranks hold identical weights (and after step 1).
const REPLICA_CHECK_EVERY: usize = 25;

#[derive(Debug, Clone)]
pub struct SftSummary {
    pub run_dir: PathBuf,
    /// Steps done in total (including those before a resume).
    pub steps: usize,
    pub resumed_from: Option<PathBuf>,
    pub last: Option<SftMetrics>,
    /// The newest checkpoint this invocation wrote.
    pub checkpoint: Option<PathBuf>,
    /// The run stopped early because the stop flag was set.
    pub stopped: bool,
}

/// The examples in a run's order: a fresh seeded shuffle each epoch.
struct ExampleOrder {
    seed: u64,
    order: Vec<usize>,
    epoch: u64,
    cursor: usize,
}

impl ExampleOrder {
    fn new(seed: u64, n: usize, epoch: u64, cursor: usize) -> Self {
        let mut o = Self {
            seed,
            order: (0..n).collect(),
            epoch,
            cursor,
        };
        if epoch > 0 {
            o.shuffle(epoch - 1);
        } else {
            o.cursor = n;
        }
        o
    }

    fn shuffle(&mut self, epoch: u64) {
        self.order = (0..self.order.len()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(crate::data::mix(self.seed, epoch));
        self.order.shuffle(&mut rng);
    }

    fn next(&mut self) -> usize {
        if self.cursor == self.order.len() {
            self.shuffle(self.epoch);
            (self.epoch, self.cursor) = (self.epoch + 1, 0);
        }
        self.cursor += 1;
        self.order[self.cursor - 1]
    }
}

/// Runs SFT to `cfg.steps` steps, or until `opts.stop` is set. Everything that can fail on the
/// config, the model or the data fails before a file of the run directory is written.
pub fn run_sft(cfg: &SftRunConfig, opts: SftOptions) -> Result<SftSummary> {
    let dir = opts
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
    cfg.validate()?;
    let config_toml = cfg.to_toml()?;
    let comm = opts.collective.clone();
    let run = check_run_dir(&*comm, &dir, opts.resume, &config_toml)?;
    let resume_from = run.resume_from.as_ref().map(|(_, ckpt)| ckpt.as_path());
    let mut job = SftJob::open(cfg, &comm, resume_from)?;
    let mut log = match comm.rank() == 0 {
        true => {
            run.begin(&config_toml)?;
            Some(RunLog::open(&run, "sft", opts.progress.clone(), cfg.steps)?)
        }
        false => None,
    };

    let (mut last, mut checkpoint, mut stopped) = (None, None, false);
    while job.state.step < cfg.steps {
        let (batch, m) = job.step(cfg, &*comm)?;
        let step = job.state.step;
        if let Some(log) = &mut log {
            let summary = format!("loss {:.4} grad norm {:.3}", m.loss, m.grad_norm);
            log.step(step, &m, &[] as &[SftSample], &summary)?;
        }
        // A signal may reach the ranks in different steps: all stop when any has seen one.
        stopped = any_rank(&*comm, opts.stop_requested())?;
        if step.is_multiple_of(cfg.output.checkpoint_every) || step == cfg.steps || stopped {
            let ckpt = run.checkpoint(step);
            if let Some(log) = &mut log {
                job.save(&ckpt)?;
                prune_checkpoints(&run.checkpoints(), cfg.output.keep_last)?;
                let n = cfg.output.samples_per_step.min(batch.len());
                let samples = greedy_samples(&job.trainer, &job.tokenizer, &batch[..n], step)?;
                log.samples(&samples)?;
            }
            checkpoint = Some(ckpt);
        }
        last = Some(m);
        if stopped {
            break;
        }
    }
    if let Some(log) = &mut log {
        log.progress.finish();
    }
    // The other ranks wait for rank 0's last checkpoint: the job ends when it is on disk.
    comm.barrier()?;
    Ok(SftSummary {
        run_dir: dir,
        steps: job.state.step,
        resumed_from: run.resume_from.map(|(_, d)| d),
        last,
        checkpoint,
        stopped,
    })
}

/// What an SFT run holds between steps: the trainer and its state, the examples in their
/// order, and what every checkpoint writes beside the weights.
struct SftJob {
    trainer: SftTrainer,
    state: SftState,
    examples: Vec<Example>,
    order: ExampleOrder,
    tokenizer: Tokenizer,
    generation: Option<GenerationConfig>,
}

impl SftJob {
    /// Loads the model and examples `cfg` names, resumes from `resume_from` and checks that
    /// every rank starts from the same weights.
    fn open(
        cfg: &SftRunConfig,
        comm: &Arc<dyn Collective>,
        resume_from: Option<&Path>,
    ) -> Result<Self> {
        let device = device(cfg.device)?;
        let Policy {
            model,
            tokenizer,
            generation,
        } = load_policy(&cfg.model, &device)?;
        let model = model.with_precision(cfg.dtype);
        let examples = read_examples(&cfg.data.path, &tokenizer, model.config().vocab_size)?;
        let mut trainer =
            SftTrainer::new(model, cfg.trainer_config(), cfg.steps)?.with_collective(comm.clone());
        let mut state = SftState::default();
        if let Some(ckpt) = resume_from {
            state = restore(&mut trainer, ckpt)?;
        }
        check_replicas(&**comm, trainer.model().vars(), "at the start")?;
        let order = ExampleOrder::new(cfg.seed, examples.len(), state.epoch, state.cursor);
        Ok(SftJob {
            trainer,
            state,
            examples,
            order,
            tokenizer,
            generation,
        })
    }

    /// One optimizer step on the next batch, counted into the state (FLOPs, device time).
    /// Returns the batch and the step's metrics line.
    fn step(
        &mut self,
        cfg: &SftRunConfig,
        comm: &dyn Collective,
    ) -> Result<(Vec<Example>, SftMetrics)> {
        let started = Instant::now();
        let batch: Vec<Example> = (0..cfg.sft.batch_size)
            .map(|_| self.examples[self.order.next()].clone())
            .collect();
        let stats = self.trainer.step(&batch)?;
        let step_s = started.elapsed().as_secs_f64();
        let state = &mut self.state;
        state.step += 1;
        (state.epoch, state.cursor) = (self.order.epoch, self.order.cursor);
        state.counters = self.trainer.counters();
        let mcfg = self.trainer.model().config();
        state.flops += 3.0
            * batch
                .iter()
                .map(|e| forward_flops(mcfg, 0, e.prompt_ids.len() + e.completion_ids.len()))
                .sum::<f64>();
        // Every rank's device was held for the step.
        state.device_seconds += step_s * comm.size() as f64;
        let m = metrics_line(state, &stats, step_s, cfg.output.price_per_device_hour);
        let step = state.step;
        if step == 1 || step.is_multiple_of(REPLICA_CHECK_EVERY) {
            let when = format!("after step {step}");
            check_replicas(comm, self.trainer.model().vars(), &when)?;
        }
        Ok((batch, m))
    }

    /// Writes a checkpoint (weights, tokenizer, optimizer, state) into `dir`, atomically.
    fn save(&self, dir: &Path) -> Result<()> {
        aha_model::save::write_atomically(dir, |tmp| {
            aha_model::save::save_checkpoint(
                self.trainer.model(),
                &self.tokenizer,
                self.generation.as_ref(),
                tmp,
                StoredDtype::F32,
            )?;
            self.trainer.save_optimizer(&tmp.join(OPTIMIZER_FILE))?;
            write_state(&tmp.join(STATE_FILE), &self.state)
        })
    }
}

fn metrics_line(state: &SftState, s: &SftStepStats, step_s: f64, price: f64) -> SftMetrics {
    let device_hours = state.device_seconds / 3600.0;
    SftMetrics {
        step: state.step,
        loss: s.loss,
        tokens: s.tokens,
        grad_norm: s.grad_norm,
        lr: s.lr,
        skipped: s.skipped,
        tokens_per_s: s.tokens as f64 / step_s.max(1e-9),
        step_s,
        flops: state.flops,
        device_hours,
        cost_usd: device_hours * price,
    }
}

fn write_state(path: &Path, state: &SftState) -> Result<()> {
    let text = serde_json::to_string_pretty(state).map_err(|e| Error::Checkpoint {
        path: path.into(),
        message: e.to_string(),
    })?;
    std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
}

/// Loads weights, optimizer and counters of the checkpoint in `dir`; returns its state.
fn restore(trainer: &mut SftTrainer, dir: &Path) -> Result<SftState> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let state: SftState = serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
        path: path.clone(),
        message: format!("not an SFT checkpoint's state: {e}"),
    })?;
    let device = trainer.model().device().clone();
    let ckpt = aha_model::load::load_checkpoint(dir, &device)?;
    set_weights(trainer.model(), &ckpt.tensors, dir)?;
    trainer.load_optimizer(&dir.join(OPTIMIZER_FILE), state.counters)?;
    Ok(state)
}

/// Greedy completions of `examples`' prompts, each up to its target's length and a margin.
fn greedy_samples(
    trainer: &SftTrainer,
    tokenizer: &Tokenizer,
    examples: &[Example],
    step: usize,
) -> Result<Vec<SftSample>> {
    if examples.is_empty() {
        return Ok(Vec::new());
    }
    let model = trainer.model();
    let mut eos = tokenizer.eos_token_ids();
    eos.extend(model.config().eos_token_ids.iter().copied());
    let longest = examples.iter().map(|e| e.completion_ids.len()).max();
    let params = SamplingParams {
        temperature: 0.0,
        max_new_tokens: longest.unwrap_or(0) + 16,
        eos_token_ids: eos,
        ..SamplingParams::default()
    };
    let prompts: Vec<Vec<u32>> = examples.iter().map(|e| e.prompt_ids.clone()).collect();
    let groups = generate_groups(model, &prompts, 1, &params, None)?;
    let text = |ids: &[u32]| tokenizer.decode(ids, false);
    examples
        .iter()
        .zip(&groups)
        .map(|(e, g)| {
            let ids = g
                .completions
                .first()
                .map(|c| c.ids.as_slice())
                .unwrap_or(&[]);
            Ok(SftSample {
                step,
                prompt: text(&e.prompt_ids)?,
                completion: text(ids)?,
                target: text(&e.completion_ids)?,
            })
        })
        .collect()
}
