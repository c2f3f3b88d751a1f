//! The GRPO run config: TOML sections, named presets, `--set` overrides, validation.
//!
//! Two stages, as in ripgrep: the raw TOML (every table `deny_unknown_fields`, so a typo is an
//! error naming the key and line) is merged over a preset's values, every default is filled in,
//! `--set key=value` overrides are applied (each value typed by the field it replaces), and the
//! result is validated into a [`TrainConfig`] whose invariants hold. [`TrainConfig::to_toml`]
//! writes it back with every default spelled out (the run directory's `config.toml`). Data and
//! model sources are described here but opened elsewhere (`data`, `run`).

use std::path::{Path, PathBuf};

pub use aha_model::{DeviceSpec, Precision};
use aha_verify::RewardSpec;
use serde::{Deserialize, Serialize};

use crate::algo::{AdvantageNorm, KlEstimator, LossAggregation, Overlong};
use crate::data::{DataConfig, DataSource};
use crate::init_model::InitPreset;
use crate::optim::OptimConfig;
use crate::{Error, Result};

/// Values a preset sets; the config file and `--set` override them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// DeepSeek-R1-Zero (arXiv:2501.12948 §2.2 and the supplement): ε = 10, β = 0.001 with k3,
    /// G = 16, lr 3e-6, temperature 1, reference reset every 400 steps.
    R1Zero,
    /// Dr. GRPO (arXiv:2503.20783): mean-only advantages, constant normaliser, no KL.
    DrGrpo,
    /// DAPO (arXiv:2503.14476): clip-higher (0.2 / 0.28), token-mean loss, dynamic sampling,
    /// soft overlong penalty, no KL.
    Dapo,
}

impl Preset {
    fn toml(self) -> &'static str {
        match self {
            Preset::R1Zero => {
                "[rollout]\ngroup_size = 16\ntemperature = 1.0\n\
                 [grpo]\nclip_low = 10.0\nclip_high = 10.0\nbeta = 0.001\nkl_estimator = \"k3\"\n\
                 reference_reset_every = 400\nadvantage = \"mean_std\"\n\
                 [optim]\nlr = 3e-6\n"
            }
            Preset::DrGrpo => {
                "[grpo]\nadvantage = \"mean_only\"\naggregation = \"constant_normalizer\"\n\
                 beta = 0.0\n"
            }
            Preset::Dapo => {
                "[grpo]\nclip_low = 0.2\nclip_high = 0.28\naggregation = \"token_mean\"\nbeta = 0.0\n\
                 filter = \"drop_uniform\"\nmax_refill_rounds = 3\n\
                 overlong = { kind = \"soft_penalty\", buffer = 32, factor = 1.0 }\n"
            }
        }
    }
}

/// Where the policy's initial weights come from: exactly one of `path` and `init`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A Hugging Face checkpoint directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// A random-initialised model from an `aha_model::init` preset (e.g. `"tiny"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitPreset>,
    /// Seed of the random initialisation.
    #[serde(default)]
    pub init_seed: u64,
}

fn prompts_per_step() -> usize {
    8
}
fn group_size() -> usize {
    8
}
fn one_f32() -> f32 {
    1.0
}
fn max_new_tokens() -> usize {
    256
}

/// Sampling of the G completions per prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    /// `B`
    #[serde(default = "prompts_per_step")]
    pub prompts_per_step: usize,
    /// `G`
    #[serde(default = "group_size")]
    pub group_size: usize,
    #[serde(default = "one_f32")]
    pub temperature: f32,
    #[serde(default = "one_f32")]
    pub top_p: f32,
    #[serde(default)]
    pub top_k: usize,
    #[serde(default = "max_new_tokens")]
    pub max_new_tokens: usize,
    #[serde(default)]
    pub stop_strings: Vec<String>,
    /// Generate exactly `max_new_tokens` per completion, ignoring EOS (benchmarks).
    #[serde(default)]
    pub ignore_eos: bool,
    /// Refuse a rollout whose KV cache would exceed this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cache_bytes: Option<usize>,
}

/// Which groups go into the update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupFilter {
    KeepAll,
    /// DAPO's dynamic sampling: drop groups whose rewards are all equal, refill from new prompts.
    DropUniform,
}

fn adv_eps() -> f32 {
    1e-4
}
fn clip() -> f32 {
    0.2
}
fn k3() -> KlEstimator {
    KlEstimator::K3
}
fn mean_std() -> AdvantageNorm {
    AdvantageNorm::MeanStd
}
fn seq_mean() -> LossAggregation {
    LossAggregation::SequenceMean
}
fn keep() -> Overlong {
    Overlong::Keep
}
fn keep_all() -> GroupFilter {
    GroupFilter::KeepAll
}
fn one() -> usize {
    1
}
fn micro() -> usize {
    16
}

/// The GRPO objective and how the update is run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoConfig {
    #[serde(default = "mean_std")]
    pub advantage: AdvantageNorm,
    /// The `eps` of `(r − mean) / (std + eps)`.
    #[serde(default = "adv_eps")]
    pub adv_eps: f32,
    #[serde(default = "clip")]
    pub clip_low: f32,
    #[serde(default = "clip")]
    pub clip_high: f32,
    /// KL coefficient; 0 skips the reference model entirely.
    #[serde(default)]
    pub beta: f32,
    #[serde(default = "k3")]
    pub kl_estimator: KlEstimator,
    /// Copy the policy into the reference every this many steps (0: never).
    #[serde(default)]
    pub reference_reset_every: usize,
    #[serde(default = "seq_mean")]
    pub aggregation: LossAggregation,
    #[serde(default = "keep")]
    pub overlong: Overlong,
    #[serde(default = "keep_all")]
    pub filter: GroupFilter,
    /// Extra generation rounds a step may spend refilling dropped groups.
    #[serde(default)]
    pub max_refill_rounds: usize,
    /// μ: passes over the step's rollouts.
    #[serde(default = "one")]
    pub passes: usize,
    /// Optimizer updates per pass (the rollouts are split into this many minibatches).
    #[serde(default = "one")]
    pub minibatches: usize,
    /// Sequences per forward/backward (gradient accumulation bounds memory by this).
    #[serde(default = "micro")]
    pub micro_batch_size: usize,
}

fn checkpoint_every() -> usize {
    50
}
fn keep_last() -> usize {
    3
}
fn samples_per_step() -> usize {
    2
}
fn yes() -> bool {
    true
}

/// What a run writes besides the weights (`[output]`, the same for `aha train` and `aha sft`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Save a checkpoint every this many steps (and always after the last).
    #[serde(default = "checkpoint_every")]
    pub checkpoint_every: usize,
    /// Checkpoints kept: older ones are deleted after each save, never the newest (0: keep all).
    #[serde(default = "keep_last")]
    pub keep_last: usize,
    /// Completions per step written to samples.jsonl (SFT: per checkpoint).
    #[serde(default = "samples_per_step")]
    pub samples_per_step: usize,
    /// Dollars per device-hour for the cost column.
    #[serde(default)]
    pub price_per_device_hour: f64,
    /// Report progress: a bar when stdout is a terminal, else one line per step.
    #[serde(default = "yes")]
    pub progress: bool,
}

impl OutputConfig {
    pub fn validate(&self) -> Result<()> {
        if self.checkpoint_every == 0 {
            return Err(Error::config(
                "output.checkpoint_every",
                "must be at least 1",
            ));
        }
        if !(self.price_per_device_hour.is_finite() && self.price_per_device_hour >= 0.0) {
            return Err(Error::config(
                "output.price_per_device_hour",
                "must be a finite number ≥ 0",
            ));
        }
        Ok(())
    }
}

/// `name` must be usable as a directory name (the default run directory is `runs/NAME`).
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(Error::config(
            "name",
            format!("`{name}` is not a usable directory name"),
        ));
    }
    Ok(())
}

fn run_name() -> String {
    "run".into()
}
fn steps() -> usize {
    100
}

/// A whole GRPO run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    #[serde(default = "run_name")]
    pub name: String,
    #[serde(default)]
    pub seed: u64,
    /// GRPO steps (one rollout batch each).
    #[serde(default = "steps")]
    pub steps: usize,
    /// `cpu`, `cuda` or `cuda:N`.
    #[serde(default)]
    pub device: DeviceSpec,
    /// Activations' dtype: `f32`, or `bf16` (GPUs; f32 master weights and optimizer state).
    #[serde(default)]
    pub dtype: Precision,
    pub model: ModelSection,
    pub data: DataConfig,
    #[serde(default = "default_section")]
    pub rollout: RolloutConfig,
    /// Reward terms; empty means the data source's task reward.
    #[serde(default)]
    pub reward: Vec<RewardSpec>,
    #[serde(default = "default_section")]
    pub grpo: GrpoConfig,
    #[serde(default)]
    pub optim: OptimConfig,
    #[serde(default = "default_section")]
    pub output: OutputConfig,
}

/// A section with every field at its default (all of them have one).
fn default_section<T: for<'de> Deserialize<'de>>() -> T {
    match toml::from_str("") {
        Ok(t) => t,
        Err(e) => unreachable!("a section without defaults: {e}"),
    }
}

/// The defaults a config file gets for an omitted section or field, for configs built in code
/// (`..RolloutConfig::default()`).
macro_rules! default_from_serde {
    ($($section:ty),*) => {$(
        impl Default for $section {
            fn default() -> Self {
                default_section()
            }
        }
    )*};
}
default_from_serde!(RolloutConfig, GrpoConfig, OutputConfig);

/// What `aha train`'s and `aha sft`'s configs share: read from a TOML file (relative paths from
/// the file's directory) with `--set` overrides (relative paths from the current directory),
/// validated, and written back with every default for `--show-config` and the run's
/// `config.toml`.
pub trait RunConfig: Serialize + Sized {
    /// Parses TOML text, applies `overrides` (`key=value`, dotted keys) and validates; relative
    /// paths in the text start at `base` when given. Syntax and unknown-key errors come back as
    /// `Error::Config` with an empty field and the parser's message (line and column).
    fn parse(text: &str, base: Option<&Path>, overrides: &[String]) -> Result<Self>;

    /// The run's `[output]` section.
    fn output(&self) -> &OutputConfig;

    /// Reads `path` as [`RunConfig::parse`] does, errors placed in the file.
    fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let base = config_dir(path)?;
        Self::parse(&text, Some(&base), overrides).map_err(|e| in_file(path, e))
    }

    /// [`RunConfig::parse`] of TOML text, relative paths left as they are.
    fn from_toml_str(text: &str, overrides: &[String]) -> Result<Self> {
        Self::parse(text, None, overrides)
    }

    /// The resolved config as TOML, every default written out.
    fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::config("", e.to_string()))
    }
}

/// The GRPO config: `parse` puts its preset under the file's values (see [`Preset`]).
impl RunConfig for TrainConfig {
    fn parse(text: &str, base: Option<&Path>, overrides: &[String]) -> Result<Self> {
        // Stage 1: the file alone, for errors that can point at a line.
        let raw: toml::Table =
            toml::from_str(text).map_err(|e| Error::config("", e.to_string()))?;
        let _: TrainConfig = toml::from_str(text).map_err(|e| Error::config("", e.to_string()))?;
        // Stage 2: preset underneath, defaults filled, overrides on top.
        let mut merged = raw;
        let preset = match find_override(overrides, "preset")? {
            Some(p) => Some(p.to_string()),
            None => merged
                .get("preset")
                .and_then(|v| v.as_str())
                .map(String::from),
        };
        if let Some(name) = preset {
            let p: Preset = toml::Value::String(name.clone()).try_into().map_err(|_| {
                Error::config(
                    "preset",
                    format!("unknown preset `{name}` (r1_zero, dr_grpo, dapo)"),
                )
            })?;
            let under: toml::Table =
                toml::from_str(p.toml()).map_err(|e| Error::config("preset", e.to_string()))?;
            merge_under(&mut merged, under);
        }
        let mut cfg: TrainConfig = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| Error::config("", e.to_string()))?;
        if let Some(base) = base {
            rebase(base, &mut cfg.model.path);
            if let DataSource::Jsonl { path, .. } | DataSource::Parquet { path, .. } =
                &mut cfg.data.source
            {
                *path = base.join(&*path);
            }
        }
        let cfg = with_overrides(&cfg, overrides)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn output(&self) -> &OutputConfig {
        &self.output
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |f: &str, m: String| Err(Error::config(f, m));
        match (&self.model.path, &self.model.init) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => return bad("model", "set exactly one of `path` and `init`".into()),
        }
        validate_name(&self.name)?;
        let r = &self.rollout;
        if r.prompts_per_step == 0 {
            return bad("rollout.prompts_per_step", "must be at least 1".into());
        }
        if r.group_size < 2 {
            return bad(
                "rollout.group_size",
                "GRPO compares completions within a group: G must be at least 2".into(),
            );
        }
        if !(nonneg(r.temperature) && r.temperature != 0.0) {
            return bad(
                "rollout.temperature",
                "must be > 0 (GRPO needs sampled, not greedy, completions)".into(),
            );
        }
        if !(nonneg(r.top_p) && r.top_p != 0.0 && r.top_p <= 1.0) {
            return bad("rollout.top_p", "must be in (0, 1]".into());
        }
        if r.max_new_tokens == 0 {
            return bad("rollout.max_new_tokens", "must be at least 1".into());
        }
        let g = &self.grpo;
        if !(nonneg(g.clip_low) && nonneg(g.clip_high)) {
            return bad("grpo.clip_low", "clip ranges must be ≥ 0".into());
        }
        if !nonneg(g.beta) {
            return bad("grpo.beta", "must be a finite number ≥ 0".into());
        }
        if !(nonneg(g.adv_eps) && g.adv_eps != 0.0) {
            return bad("grpo.adv_eps", "must be > 0".into());
        }
        if g.passes == 0 || g.minibatches == 0 || g.micro_batch_size == 0 {
            return bad(
                "grpo.passes",
                "passes, minibatches and micro_batch_size must be at least 1".into(),
            );
        }
        if let Overlong::SoftPenalty { buffer, factor } = g.overlong {
            if buffer == 0 || buffer > r.max_new_tokens || !factor.is_finite() {
                return bad(
                    "grpo.overlong",
                    format!("soft_penalty buffer must be in 1..={}", r.max_new_tokens),
                );
            }
        }
        self.output.validate()?;
        if self.steps == 0 {
            return bad("steps", "must be at least 1".into());
        }
        self.optim.validate("optim")?;
        self.data.validate()?;
        // Checked, not built: building starts external rewards' programs.
        match aha_verify::Reward::check(&self.reward) {
            Ok(()) | Err(aha_verify::Error::NoTerms) => {}
            Err(e) => return Err(Error::config("reward", e.to_string())),
        }
        Ok(())
    }

    /// Optimizer updates in the whole run.
    pub fn total_updates(&self) -> usize {
        self.steps * self.grpo.passes * self.grpo.minibatches
    }

    /// The reward to score completions with: the `[[reward]]` terms, or the task's own.
    pub fn reward(&self) -> Result<aha_verify::Reward> {
        if self.reward.is_empty() {
            return Ok(self.data.default_reward());
        }
        aha_verify::Reward::new(self.reward.clone())
            .map_err(|e| Error::config("reward", e.to_string()))
    }
}

/// The absolute directory of a config file: where its relative paths start.
pub fn config_dir(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    Ok(abs.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// Makes a relative `path` start at `base` (the config file's directory).
pub fn rebase(base: &Path, path: &mut Option<PathBuf>) {
    if let Some(p) = path {
        *p = base.join(&*p);
    }
}

/// A config error without a file (a parse error or a bad value) placed in `path`.
pub fn in_file(path: &Path, e: Error) -> Error {
    match e {
        Error::Config { field, message } if field.is_empty() => Error::ConfigFile {
            path: path.into(),
            message,
        },
        other => other,
    }
}

/// `cfg` with `--set key=value` overrides applied, every value typed by the field it replaces.
pub fn with_overrides<T: Serialize + serde::de::DeserializeOwned>(
    cfg: &T,
    overrides: &[String],
) -> Result<T> {
    let mut full = toml::Table::try_from(cfg).map_err(|e| Error::config("", e.to_string()))?;
    for o in overrides {
        apply_override(&mut full, o)?;
    }
    toml::Value::Table(full)
        .try_into()
        .map_err(|e: toml::de::Error| Error::config("--set", e.to_string()))
}

/// Adds every key of `under` that `over` lacks, recursing into tables.
fn merge_under(over: &mut toml::Table, under: toml::Table) {
    for (k, v) in under {
        match (over.get_mut(&k), v) {
            (Some(toml::Value::Table(o)), toml::Value::Table(u)) => merge_under(o, u),
            (Some(_), _) => {}
            (None, v) => {
                over.insert(k, v);
            }
        }
    }
}

fn find_override<'a>(overrides: &'a [String], key: &str) -> Result<Option<&'a str>> {
    for o in overrides {
        let (k, v) = split_override(o)?;
        if k == key {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

fn split_override(o: &str) -> Result<(&str, &str)> {
    o.split_once('=')
        .map(|(k, v)| (k.trim(), v.trim()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| Error::config("--set", format!("`{o}` is not key=value")))
}

/// Sets `key=value` in `table`, typing the value like the field it replaces: a string field
/// takes the text as is, numbers and booleans are parsed, anything else (arrays, inline
/// tables, absent optional fields) is parsed as a TOML value, falling back to a string.
fn apply_override(table: &mut toml::Table, o: &str) -> Result<()> {
    let (key, text) = split_override(o)?;
    let parts: Vec<&str> = key.split('.').collect();
    let (last, parents) = parts
        .split_last()
        .ok_or_else(|| Error::config(key, "empty key"))?;
    let mut t = table;
    for (i, p) in parents.iter().enumerate() {
        let entry = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry
            .as_table_mut()
            .ok_or_else(|| Error::config(parts[..=i].join("."), "is a value, not a section"))?;
    }
    let bad = |what: &str| Error::config(key, format!("expected {what}, got `{text}`"));
    let value = match t.get(*last) {
        Some(toml::Value::String(_)) => toml::Value::String(text.to_string()),
        Some(toml::Value::Integer(_)) => {
            toml::Value::Integer(text.parse().map_err(|_| bad("an integer"))?)
        }
        Some(toml::Value::Float(_)) => {
            toml::Value::Float(text.parse().map_err(|_| bad("a number"))?)
        }
        Some(toml::Value::Boolean(_)) => {
            toml::Value::Boolean(text.parse().map_err(|_| bad("true or false"))?)
        }
        _ => parse_literal(text),
    };
    t.insert(last.to_string(), value);
    Ok(())
}

fn parse_literal(text: &str) -> toml::Value {
    #[derive(Deserialize)]
    struct Wrap {
        v: toml::Value,
    }
    match toml::from_str::<Wrap>(&format!("v = {text}")) {
        Ok(w) => w.v,
        Err(_) => toml::Value::String(text.to_string()),
    }
}

/// `x ≥ 0` and finite.
fn nonneg(x: f32) -> bool {
    x.is_finite() && x >= 0.0
}
