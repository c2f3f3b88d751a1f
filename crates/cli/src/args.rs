//! Flags that mean the same thing in several commands, defined once so every command spells
//! them the same way. docs/cli.md lists which command takes which group. A command flattens the
//! groups it needs (`#[command(flatten)]`) and, where its purpose calls for another default
//! (sampling for rollouts vs R1's evaluation protocol), changes only the default with
//! `mut_arg`. Old spellings stay accepted as hidden aliases.
//!
//! Checks that need no model (paths writable, counts at least 1) run here, before any compute.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use aha_model::tokenizer::Tokenizer;
use aha_model::{DeviceSpec, Model, Precision};
use aha_train::data::{check_token_ids, read_items, Item, MissingAnswer, Needs, PromptTemplate};
use aha_train::eval::EvalConfig;
use aha_verify::{ExtractMode, Task, TaskOptions, ThinkRule};
use anyhow::Context;
use candle_core::Device;
use clap::ValueEnum;

/// Where the model runs and in which precision.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Where the model runs: cpu, cuda or cuda:N (cuda needs the CUDA build,
    /// scripts/build-cuda.sh).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Activations' dtype: f32, or bf16 (for GPUs; on the CPU it takes the slower generic ops).
    #[arg(long, default_value = "f32")]
    pub dtype: Precision,
}

impl DeviceArgs {
    /// The candle device; CUDA in a build without it is an error that says how to build it.
    pub fn device(&self) -> anyhow::Result<Device> {
        Ok(self.device.open()?)
    }

    /// The checkpoint in `dir`, on `--device`, computing in `--dtype`.
    pub fn load_model(&self, dir: &Path) -> anyhow::Result<Model> {
        let model = aha_model::load::load_model(dir, &self.device()?, false)
            .with_context(|| format!("loading model {}", dir.display()))?;
        Ok(model.with_precision(self.dtype))
    }
}

/// The problems in `input` and the checkpoint in `model_dir` that answers them, with its
/// tokenizer: what `eval` and `rejection-sample` start from. Token ids the rows give are checked
/// against the model's vocabulary before any compute.
pub fn problems_and_model(
    input: &Path,
    fields: &FieldArgs,
    needs: Needs,
    model_dir: &Path,
    device: &DeviceArgs,
) -> anyhow::Result<(Vec<Item>, Model, Tokenizer)> {
    let (items, _) = read_items(input, &fields.fields(), MissingAnswer::Error, needs)?;
    let model = device.load_model(model_dir)?;
    let tokenizer = Tokenizer::from_dir(model_dir)?;
    check_token_ids(input, &items, model.config().vocab_size)?;
    Ok((items, model, tokenizer))
}

/// How completions are sampled: shared by `sample`, `eval` and `rejection-sample`.
#[derive(clap::Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Completions sampled per prompt (G in GRPO, K in pass@1 over K and maj@K).
    #[arg(long = "k", alias = "n", default_value_t = 1, value_name = "K", value_parser = positive)]
    pub k: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Nucleus sampling mass; 1 is off.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Keep only the K most likely tokens; 0 is off.
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Most tokens per completion.
    #[arg(long, default_value_t = 512)]
    pub max_new_tokens: usize,
    /// Seed of the sampling streams; a completion depends only on (seed, prompt index, sample
    /// index).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A string that ends a completion (kept in it). Repeatable.
    #[arg(long)]
    pub stop: Vec<String>,
}

/// How many prompts (or, for `logprobs`, sequences) go through the model together.
#[derive(clap::Args, Debug, Clone)]
pub struct BatchArgs {
    /// Prompts decoded together, each with its K completions (memory grows with this × K);
    /// `logprobs`: sequences per forward pass. Results do not depend on it.
    #[arg(
        long,
        alias = "batch-prompts",
        alias = "prompts-per-batch",
        default_value_t = 8,
        value_parser = positive
    )]
    pub batch_size: usize,
}

/// How a problem becomes the prompt text.
#[derive(clap::Args, Debug, Clone)]
pub struct TemplateArgs {
    /// Prompt template for `prompt` text: r1_zero (DeepSeek-R1-Zero's), chat (the checkpoint's
    /// chat template), raw (as is), or a format string containing {prompt} (Countdown rows
    /// may also use {numbers} and {target}). `prompt_ids` and `messages` rows are used as given.
    #[arg(long, default_value = "r1_zero")]
    pub template: PromptTemplate,
}

/// Names of the input fields (JSONL keys, Parquet columns) a command reads.
#[derive(clap::Args, Debug, Clone)]
pub struct FieldArgs {
    /// Field holding the prompt text (`prompt_ids` and `messages` are always accepted too).
    #[arg(long, default_value = "prompt")]
    pub prompt_field: String,
    /// Field holding the reference answer.
    #[arg(long, default_value = "answer")]
    pub answer_field: String,
    /// Countdown: field holding the numbers to use.
    #[arg(long, default_value = "numbers")]
    pub numbers_field: String,
    /// Countdown: field holding the target.
    #[arg(long, default_value = "target")]
    pub target_field: String,
}

impl FieldArgs {
    pub fn fields(&self) -> aha_train::data::Fields {
        aha_train::data::Fields {
            prompt: self.prompt_field.clone(),
            answer: self.answer_field.clone(),
            numbers: self.numbers_field.clone(),
            target: self.target_field.clone(),
        }
    }
}

/// The verifier a command judges completions with.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskName {
    /// Final answer (`<answer>`, `\boxed{}`, …) equivalent to `answer` as mathematics.
    Math,
    /// A Countdown expression over `numbers` that evaluates to `target`.
    Countdown,
    /// An exactly written integer answer (the demo's synthetic tasks).
    Arithmetic,
    /// The R1 template alone: one `<think>` block, then one `<answer>` block.
    Format,
    /// The last ```python block passes every `tests` case, run in a bubblewrap sandbox.
    Code,
}

impl From<TaskName> for Task {
    fn from(t: TaskName) -> Task {
        match t {
            TaskName::Math => Task::Math,
            TaskName::Countdown => Task::Countdown,
            TaskName::Arithmetic => Task::Arithmetic,
            TaskName::Format => Task::Format,
            TaskName::Code => Task::Code,
        }
    }
}

/// What the R1 format rule expects of the think block.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThinkName {
    /// `<think>…</think><answer>…</answer>`.
    Required,
    /// As required, or an answer block alone.
    Optional,
    /// The prompt ends with `<think>`: completions are `…</think><answer>…</answer>`.
    Prefilled,
}

impl From<ThinkName> for ThinkRule {
    fn from(t: ThinkName) -> ThinkRule {
        match t {
            ThinkName::Required => ThinkRule::Required,
            ThinkName::Optional => ThinkRule::Optional,
            ThinkName::Prefilled => ThinkRule::Prefilled,
        }
    }
}

/// The verifier: shared by `eval` and `rejection-sample` (as `[[reward]]` terms are in a
/// training config; `reward` takes the options with an optional task).
#[derive(clap::Args, Debug, Clone)]
pub struct VerifierArgs {
    /// Which verifier judges the completions.
    #[arg(long, value_enum)]
    pub task: TaskName,
    #[command(flatten)]
    pub options: VerifierOptions,
}

impl VerifierArgs {
    pub fn task(&self) -> Task {
        self.task.into()
    }
}

/// How the answer is found (`--extract`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtractName {
    /// Explicit markers only: `<answer>`, `\boxed{}`, "the answer is", `####` (training's
    /// default).
    Strict,
    /// Math-Verify's reading: markers, else the last LaTeX expression, else the last number.
    Lenient,
}

/// The options a `[[reward]]` table takes, with the same defaults (a table that leaves an option
/// out gets the same verifier as a command without its flag).
#[derive(clap::Args, Debug, Clone)]
pub struct VerifierOptions {
    /// The think-block rule of the task's format check (default: the task's own — required
    /// for math, countdown and format, optional for arithmetic).
    #[arg(long, value_enum)]
    pub think: Option<ThinkName>,
    /// Where math and countdown answers are read from: [[reward]] extract = …, with the same
    /// default (so are --rel-tol, --use-all and --think: a command judges as training does).
    #[arg(long, value_enum, default_value = "strict")]
    pub extract: ExtractName,
    /// Math: how far (relative) a decimal answer may be from an exact reference, e.g. 0.0833333
    /// for \frac{1}{12}: [[reward]] rel_tol = …, with the same default.
    #[arg(long, default_value_t = aha_verify::DEFAULT_REL_TOL, value_parser = non_negative)]
    pub rel_tol: f64,
    /// Countdown: whether every number must be used exactly once (false: a subset, each at
    /// most once): [[reward]] use_all = …, with the same default.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub use_all: bool,
}

impl VerifierOptions {
    pub fn task_options(&self) -> TaskOptions {
        TaskOptions {
            extract: match self.extract {
                ExtractName::Strict => ExtractMode::Strict,
                ExtractName::Lenient => ExtractMode::Lenient,
            }
            .into(),
            rel_tol: self.rel_tol,
            use_all: self.use_all,
            think: self.think.map(ThinkRule::from),
        }
    }
}

/// The evaluation protocol of `eval` and `rejection-sample`: how completions are sampled and
/// judged, built the same way for both.
pub fn eval_config(
    sampling: SamplingArgs,
    template: &TemplateArgs,
    verifier: &VerifierArgs,
    batch: &BatchArgs,
) -> EvalConfig {
    EvalConfig {
        k: sampling.k,
        temperature: sampling.temperature,
        top_p: sampling.top_p,
        top_k: sampling.top_k,
        max_new_tokens: sampling.max_new_tokens,
        seed: sampling.seed,
        template: template.template.clone(),
        task: verifier.task(),
        options: verifier.options.task_options(),
        stop_strings: sampling.stop,
        prompts_per_batch: batch.batch_size,
    }
}

/// Checks that `path` can be written, before any compute, without leaving a file behind: an
/// existing file is opened for appending (its contents untouched), a new one created and removed.
pub fn check_output(path: Option<&Path>) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    if path.exists() {
        OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    } else {
        create(path)?;
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// Opens `--output` (or stdout) for writing.
pub fn open_output(path: Option<&Path>) -> anyhow::Result<(String, BufWriter<Box<dyn Write>>)> {
    Ok(match path {
        Some(p) => (
            p.display().to_string(),
            BufWriter::new(Box::new(create(p)?)),
        ),
        None => (
            "stdout".into(),
            BufWriter::new(Box::new(io::stdout().lock())),
        ),
    })
}

/// Creates (truncates) the file `path` with an error that says what is wrong with the path.
fn create(path: &Path) -> anyhow::Result<File> {
    File::create(path).with_context(|| {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        match parent {
            Some(dir) if !dir.is_dir() => format!(
                "cannot create {}: the directory {} does not exist",
                path.display(),
                dir.display()
            ),
            _ => format!("cannot create {}", path.display()),
        }
    })
}

/// A tolerance: a finite number ≥ 0.
fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        Ok(_) => Err("must be a finite number ≥ 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A count that must be at least 1 (checked by clap, so the error names the flag).
pub fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}
