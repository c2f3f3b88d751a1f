//! The `aha sft` run config. It has the shape of the GRPO config (`config`): the same top-level
//! keys (`name`, `seed`, `steps`, `device`), `[model]`, `[optim]` and `[output]`, with `[data]`
//! naming the example file and `[sft]` in place of `[rollout]`/`[grpo]`. Loaded the same way:
//! TOML with `deny_unknown_fields`, relative paths from the file's directory, `--set`
//! overrides, validation, and [`RunConfig::to_toml`] for `--show-config` and the run's
//! `config.toml`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{
    validate_name, with_overrides, DeviceSpec, ModelSection, OutputConfig, Precision, RunConfig,
};
use crate::optim::OptimConfig;
use crate::sft::{LossOn, SftConfig};
use crate::{Error, Result};

fn name() -> String {
    "sft".into()
}
fn steps() -> usize {
    100
}
fn batch() -> usize {
    16
}
fn micro() -> usize {
    16
}
fn loss_on() -> LossOn {
    LossOn::Completion
}

/// `[data]`: the examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftData {
    /// JSONL of `{"prompt", "completion"}` or `{"messages"}` rows, or Parquet (`.parquet`).
    pub path: PathBuf,
}

/// `[sft]`: the batch and the loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftSection {
    /// Examples per step.
    #[serde(default = "batch")]
    pub batch_size: usize,
    /// Sequences per forward/backward; a step's batch is split into these.
    #[serde(default = "micro")]
    pub micro_batch_size: usize,
    #[serde(default = "loss_on")]
    pub loss_on: LossOn,
}

impl Default for SftSection {
    fn default() -> Self {
        Self {
            batch_size: batch(),
            micro_batch_size: micro(),
            loss_on: loss_on(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftRunConfig {
    #[serde(default = "name")]
    pub name: String,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "steps")]
    pub steps: usize,
    /// `cpu`, `cuda` or `cuda:N`.
    #[serde(default)]
    pub device: DeviceSpec,
    /// Activations' dtype: `f32`, or `bf16` (GPUs; f32 master weights and optimizer state).
    #[serde(default)]
    pub dtype: Precision,
    pub model: ModelSection,
    pub data: SftData,
    #[serde(default)]
    pub sft: SftSection,
    #[serde(default)]
    pub optim: OptimConfig,
    #[serde(default = "default_output")]
    pub output: OutputConfig,
}

fn default_output() -> OutputConfig {
    match toml::from_str("") {
        Ok(t) => t,
        Err(e) => unreachable!("[output] has a default for every field: {e}"),
    }
}

impl RunConfig for SftRunConfig {
    fn parse(text: &str, base: Option<&Path>, overrides: &[String]) -> Result<Self> {
        let raw: toml::Table =
            toml::from_str(text).map_err(|e| Error::config("", e.to_string()))?;
        old_layout_hint(&raw)?;
        let mut cfg: Self = toml::from_str(text).map_err(|e| Error::config("", e.to_string()))?;
        if let Some(base) = base {
            cfg.data.path = base.join(&cfg.data.path);
            crate::config::rebase(base, &mut cfg.model.path);
        }
        let cfg = with_overrides(&cfg, overrides)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn output(&self) -> &OutputConfig {
        &self.output
    }
}

impl SftRunConfig {
    pub fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        if let (Some(_), Some(_)) | (None, None) = (&self.model.path, &self.model.init) {
            return Err(Error::config(
                "model",
                "set exactly one of `path` and `init`",
            ));
        }
        let at_least_one = [
            ("steps", self.steps),
            ("sft.batch_size", self.sft.batch_size),
            ("sft.micro_batch_size", self.sft.micro_batch_size),
        ];
        if let Some((field, _)) = at_least_one.iter().find(|(_, v)| *v == 0) {
            return Err(Error::config(*field, "must be at least 1"));
        }
        self.optim.validate("optim")?;
        self.output.validate()
    }

    /// What the trainer itself needs.
    pub fn trainer_config(&self) -> SftConfig {
        SftConfig {
            optim: self.optim.clone(),
            micro_batch_size: self.sft.micro_batch_size,
            loss_on: self.sft.loss_on,
        }
    }
}

/// Names where a key of the SFT layout before the GRPO-shaped one went, instead of the
/// parser's bare "unknown field".
fn old_layout_hint(raw: &toml::Table) -> Result<()> {
    let moved = [
        (
            raw.get("data").is_some_and(|d| d.is_str()),
            "`data = \"…\"` is now `[data] path`",
        ),
        (
            raw.contains_key("batch_size"),
            "`batch_size` is now `[sft] batch_size`",
        ),
        (
            raw.contains_key("checkpoint_every"),
            "`checkpoint_every` is now `[output] checkpoint_every`",
        ),
        (
            raw.get("sft")
                .and_then(|s| s.as_table())
                .is_some_and(|s| s.contains_key("optim")),
            "`[sft.optim]` is now `[optim]`",
        ),
    ];
    let notes: Vec<&str> = moved
        .iter()
        .filter(|(hit, _)| *hit)
        .map(|(_, m)| *m)
        .collect();
    match notes.is_empty() {
        true => Ok(()),
        false => Err(Error::config(
            "",
            format!(
                "this is the old SFT config layout: {} (see configs/sft_smoke.toml)",
                notes.join("; ")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_layout_is_refused_with_where_each_key_went() {
        let old = "data = \"x.jsonl\"\nbatch_size = 4\n[model]\ninit = \"tiny\"\n\
                   [sft.optim]\nlr = 0.1\n";
        let e = SftRunConfig::from_toml_str(old, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`[data] path`"), "{e}");
        assert!(e.contains("`[sft] batch_size`"), "{e}");
        assert!(e.contains("`[optim]`"), "{e}");
    }

    #[test]
    fn overrides_and_ranges() {
        let text = "[model]\ninit = \"tiny\"\n[data]\npath = \"x.jsonl\"\n";
        let cfg =
            SftRunConfig::from_toml_str(text, &["optim.lr=0.5".into(), "sft.batch_size=3".into()])
                .unwrap();
        assert_eq!((cfg.optim.lr, cfg.sft.batch_size), (0.5, 3));
        assert_eq!(cfg.output.keep_last, 3);
        let e = SftRunConfig::from_toml_str(text, &["sft.micro_batch_size=0".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("sft.micro_batch_size"), "{e}");
        let e = SftRunConfig::from_toml_str(text, &["optim.lr=-1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("optim.lr"), "{e}");
        // The resolved config reads back to itself.
        let again = SftRunConfig::from_toml_str(&cfg.to_toml().unwrap(), &[]).unwrap();
        assert_eq!(again, cfg);
    }
}
