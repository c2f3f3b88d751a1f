//! The on-disk layout `aha train` and `aha sft` share, and the checks that keep a run's work:
//!
//! ```text
//! runs/NAME/config.toml        the resolved config (every default written out)
//!           metrics.jsonl      one line per step
//!           samples.jsonl      completions to read
//!           events.out.tfevents.*  the metrics for TensorBoard
//!           checkpoints/step_NNNNNN/
//! ```
//!
//! [`RunDir::check`] runs before any file of the run is touched: it refuses to start over an
//! existing run without `--resume`, to resume without a checkpoint, or to resume with a config
//! that differs in a key outside [`MUTABLE_KEYS`]; and it proves the directory writable.
//! [`RunDir::begin`] then cleans what a killed checkpoint write left behind and saves the
//! config. [`prune_checkpoints`] applies `keep_last`. Opening the metrics files is the caller's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::grpo::checkpoint::{checkpoint_name, newest_checkpoint};
use crate::{Error, Result};

pub const CONFIG_FILE: &str = "config.toml";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const SAMPLES_FILE: &str = "samples.jsonl";
pub const CHECKPOINTS_DIR: &str = "checkpoints";

/// Config keys a resumed run may change: they steer how long the run goes and what it writes,
/// not what a step computes (`micro_batch_size` only bounds memory; `device` moves the same
/// computation). Every other key must match the saved `config.toml`.
pub const MUTABLE_KEYS: &[&str] = &[
    "name",
    "steps",
    "device",
    "output.checkpoint_every",
    "output.keep_last",
    "output.samples_per_step",
    "output.price_per_device_hour",
    "output.progress",
    "rollout.max_cache_bytes",
    "grpo.micro_batch_size",
    "sft.micro_batch_size",
];

/// A run directory whose checks have passed.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub dir: PathBuf,
    /// The checkpoint a resumed run starts from, and its step.
    pub resume_from: Option<(usize, PathBuf)>,
}

impl RunDir {
    /// Checks `dir` for a run with the resolved config `config_toml`, creating the directory
    /// if needed but writing nothing else. `resume` continues the newest complete checkpoint.
    pub fn check(dir: &Path, resume: bool, config_toml: &str) -> Result<Self> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::Checkpoint {
                path: dir.into(),
                message: "is not a directory".into(),
            });
        }
        let ckpts = dir.join(CHECKPOINTS_DIR);
        let resume_from = match resume {
            false if dir.join(METRICS_FILE).exists() => {
                return Err(Error::Checkpoint {
                    path: dir.into(),
                    message: "already holds a run; pass --resume to continue it or choose \
                              another --run-dir"
                        .into(),
                })
            }
            false => None,
            true => match newest_checkpoint(&ckpts)? {
                Some(found) => Some(found),
                None => {
                    return Err(Error::Checkpoint {
                        path: ckpts,
                        message: "no complete checkpoint to resume from (nothing in the run \
                                  directory was changed)"
                            .into(),
                    })
                }
            },
        };
        if resume {
            let saved = dir.join(CONFIG_FILE);
            if saved.exists() {
                let text = std::fs::read_to_string(&saved).map_err(|e| Error::io(&saved, e))?;
                let differ = changed_keys(&text, config_toml).map_err(|m| Error::ConfigFile {
                    path: saved.clone(),
                    message: m,
                })?;
                if !differ.is_empty() {
                    return Err(Error::ConfigFile {
                        path: saved,
                        message: format!(
                            "--resume with a config that differs from the run's in {}; only {} \
                             may change when resuming (start a new run to change the others)",
                            differ.join(", "),
                            MUTABLE_KEYS.join(", ")
                        ),
                    });
                }
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let probe = dir.join(".aha_write_test");
        std::fs::write(&probe, b"").map_err(|e| Error::io(&probe, e))?;
        std::fs::remove_file(&probe).map_err(|e| Error::io(&probe, e))?;
        Ok(Self {
            dir: dir.into(),
            resume_from,
        })
    }

    /// Called once model and data have loaded: cleans interrupted checkpoint writes and saves
    /// the resolved config (on resume the saved one differs at most in [`MUTABLE_KEYS`]).
    pub fn begin(&self, config_toml: &str) -> Result<()> {
        clean_interrupted_writes(&self.checkpoints())?;
        let path = self.dir.join(CONFIG_FILE);
        std::fs::write(&path, config_toml).map_err(|e| Error::io(&path, e))
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.dir.join(CHECKPOINTS_DIR)
    }

    /// The directory of the checkpoint after `step` steps.
    pub fn checkpoint(&self, step: usize) -> PathBuf {
        self.checkpoints().join(checkpoint_name(step))
    }

    /// Steps already done: those of the checkpoint resumed from.
    pub fn done(&self) -> Option<usize> {
        self.resume_from.as_ref().map(|(s, _)| *s)
    }
}

/// Dotted keys whose values differ between two TOML documents, ignoring [`MUTABLE_KEYS`].
pub fn changed_keys(saved: &str, current: &str) -> std::result::Result<Vec<String>, String> {
    let parse = |t: &str| toml::from_str::<toml::Table>(t).map_err(|e| e.to_string());
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten("", &toml::Value::Table(parse(saved)?), &mut a);
    flatten("", &toml::Value::Table(parse(current)?), &mut b);
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    Ok(keys
        .into_iter()
        .filter(|k| !MUTABLE_KEYS.contains(&k.as_str()) && a.get(*k) != b.get(*k))
        .cloned()
        .collect())
}

/// Leaves of `value` by dotted key; arrays (e.g. `[[reward]]`) compare as one value.
fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, toml::Value>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = match prefix {
                    "" => k.clone(),
                    p => format!("{p}.{k}"),
                };
                flatten(&key, v, out);
            }
        }
        v => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

/// Removes the temporary directories `aha_model::save::write_atomically` leaves when a process
/// dies mid-write (`.step_NNNNNN.tmp-*`), and settles a replacement cut short between its two
/// renames (`.step_NNNNNN.old-*`: put back when the checkpoint it replaced is gone, else
/// removed). Nothing else in `checkpoints/` is touched.
pub fn clean_interrupted_writes(ckpts: &Path) -> Result<()> {
    if !ckpts.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(ckpts).map_err(|e| Error::io(ckpts, e))? {
        let path = entry.map_err(|e| Error::io(ckpts, e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(rest) = name.strip_prefix(".step_") else {
            continue;
        };
        let Some((step, kind)) = rest.split_once('.') else {
            continue;
        };
        if !step.bytes().all(|b| b.is_ascii_digit()) || !path.is_dir() {
            continue;
        }
        let target = ckpts.join(format!("step_{step}"));
        if kind.starts_with("old-") && !target.exists() {
            std::fs::rename(&path, &target).map_err(|e| Error::io(&path, e))?;
        } else if kind.starts_with("tmp-") || kind.starts_with("old-") {
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// Deletes the oldest `step_NNNNNN` checkpoints so that `keep_last` remain (0 keeps all); the
/// newest is never deleted.
pub fn prune_checkpoints(ckpts: &Path, keep_last: usize) -> Result<Vec<PathBuf>> {
    if keep_last == 0 || !ckpts.is_dir() {
        return Ok(Vec::new());
    }
    let mut found: Vec<(usize, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(ckpts).map_err(|e| Error::io(ckpts, e))? {
        let path = entry.map_err(|e| Error::io(ckpts, e))?.path();
        let step = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("step_"))
            .and_then(|s| s.parse::<usize>().ok());
        if let (Some(step), true) = (step, path.is_dir()) {
            found.push((step, path));
        }
    }
    found.sort();
    let excess = found.len().saturating_sub(keep_last.max(1));
    let mut removed = Vec::new();
    for (_, path) in found.into_iter().take(excess) {
        std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        removed.push(path);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("aha-rundir-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn changed_keys_ignore_mutable_ones() {
        let saved = "steps = 10\nseed = 0\n[output]\nkeep_last = 3\n[optim]\nlr = 0.001\n";
        let now = "steps = 20\nseed = 1\n[output]\nkeep_last = 5\n[optim]\nlr = 0.002\n";
        assert_eq!(
            changed_keys(saved, now).unwrap(),
            vec!["optim.lr".to_string(), "seed".to_string()]
        );
        assert!(changed_keys(saved, saved).unwrap().is_empty());
        // A key only one side has differs too.
        assert_eq!(
            changed_keys(
                saved,
                "steps = 10\nseed = 0\n[optim]\nlr = 0.001\nwarmup = 2\n"
            )
            .unwrap(),
            vec!["optim.warmup".to_string()]
        );
    }

    #[test]
    fn prune_keeps_the_newest_and_only_step_dirs() {
        let d = scratch("prune");
        for s in [1, 2, 3, 10, 11] {
            std::fs::create_dir_all(d.join(checkpoint_name(s))).unwrap();
        }
        std::fs::create_dir_all(d.join("best")).unwrap();
        let removed = prune_checkpoints(&d, 2).unwrap();
        assert_eq!(removed.len(), 3);
        let mut left: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["best", "step_000010", "step_000011"]);
        assert!(prune_checkpoints(&d, 0).unwrap().is_empty());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn interrupted_writes_are_cleaned_and_a_half_replacement_restored() {
        let d = scratch("clean");
        std::fs::create_dir_all(d.join(".step_000005.tmp-123-456")).unwrap();
        std::fs::create_dir_all(d.join(".step_000004.old-1-2/x")).unwrap();
        std::fs::create_dir_all(d.join(".step_000003.old-1-2")).unwrap();
        std::fs::create_dir_all(d.join("step_000003")).unwrap();
        std::fs::create_dir_all(d.join(".mine")).unwrap();
        clean_interrupted_writes(&d).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".mine", "step_000003", "step_000004"]);
        assert!(d.join("step_000004/x").is_dir());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
