//! Prompt data for GRPO: where problems come from, how they become prompt text, and the
//! deterministic order a run visits them in.
//!
//! A source is a JSONL or Parquet file with configurable field names, or a built-in synthetic
//! task (4-digit addition, Countdown). Every source yields [`Item`]s: the problem text and what
//! a verifier judges against. [`PromptStream`] walks a source in an order fixed by the run seed
//! (files: a fresh shuffle each epoch; synthetic tasks: item `k` drawn from its own seeded RNG),
//! so a resumed run only needs the count of items consumed. Templates live in `template.rs`.

pub mod jsonl;
pub mod parquet;
pub mod rows;
pub mod synthetic;
pub mod template;

use std::path::PathBuf;

use aha_model::tokenizer::ChatMessage;
use aha_verify::{Reference, Reward, RewardSpec, Task};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use template::PromptTemplate;

use crate::{Error, Result};

/// One problem: the text the template wraps (or a prompt the row gives ready-made), and what
/// its completions are judged against. Built-in verifiers read the typed fields; external
/// rewards (a user's program or server) get `row`, the dataset row's every field but the prompt
/// text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The problem text; for a `messages` row the last user turn, for a `prompt_ids` row empty.
    pub problem: String,
    /// A `prompt_ids` or `messages` prompt, used as given instead of the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given: Option<GivenPrompt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Countdown: the numbers to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numbers: Option<Vec<i64>>,
    /// Countdown: the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<i64>,
    /// The row's fields other than the prompt (answer, tests, ids, …), as read.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub row: Map<String, Value>,
    /// The 1-based line (row) of the file it was read from; 0 for an item made in code.
    #[serde(skip)]
    pub line: usize,
}

/// A prompt a row gives ready-made, as `aha sample` accepts it: token ids, or chat messages
/// rendered with the checkpoint's chat template and its generation prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GivenPrompt {
    Ids(Vec<u32>),
    Messages(Vec<ChatMessage>),
}

impl Item {
    /// An item made in code (synthetic tasks, tests): its row holds the reference fields that
    /// are set, under their default names, so external rewards see `answer` or
    /// `numbers`/`target` as they would from a file.
    pub fn new(
        problem: String,
        answer: Option<String>,
        numbers: Option<Vec<i64>>,
        target: Option<i64>,
    ) -> Item {
        let mut row = Map::new();
        if let Some(a) = &answer {
            row.insert("answer".into(), Value::String(a.clone()));
        }
        if let Some(n) = &numbers {
            row.insert("numbers".into(), Value::from(n.clone()));
        }
        if let Some(t) = target {
            row.insert("target".into(), Value::from(t));
        }
        Item {
            problem,
            given: None,
            answer,
            numbers,
            target,
            row,
            line: 0,
        }
    }

    pub fn reference(&self) -> Reference<'_> {
        Reference {
            answer: self.answer.as_deref(),
            numbers: self.numbers.as_deref(),
            target: self.target,
        }
    }

    /// Whether a verifier has anything to judge against: an answer, numbers and target, or
    /// the code reward's `tests`.
    pub fn has_reference(&self) -> bool {
        self.answer.is_some()
            || (self.numbers.is_some() && self.target.is_some())
            || self.row.contains_key("tests")
    }
}

/// Field names of a dataset row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    #[serde(default = "f_prompt")]
    pub prompt: String,
    #[serde(default = "f_answer")]
    pub answer: String,
    #[serde(default = "f_numbers")]
    pub numbers: String,
    #[serde(default = "f_target")]
    pub target: String,
}

fn f_prompt() -> String {
    "prompt".into()
}
fn f_answer() -> String {
    "answer".into()
}
fn f_numbers() -> String {
    "numbers".into()
}
fn f_target() -> String {
    "target".into()
}

impl Default for Fields {
    fn default() -> Self {
        Self {
            prompt: f_prompt(),
            answer: f_answer(),
            numbers: f_numbers(),
            target: f_target(),
        }
    }
}

fn digits() -> usize {
    4
}
fn cd_count() -> usize {
    4
}
fn cd_max() -> i64 {
    99
}
fn math() -> Task {
    Task::Math
}

/// Where problems come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSource {
    Jsonl {
        path: PathBuf,
        #[serde(default)]
        fields: Fields,
        /// The verifier task used when the config lists no `[[reward]]` terms.
        #[serde(default = "math")]
        task: Task,
    },
    Parquet {
        path: PathBuf,
        #[serde(default)]
        fields: Fields,
        #[serde(default = "math")]
        task: Task,
    },
    /// `a+b` with `digits`-digit operands; the answer is the sum.
    Addition {
        #[serde(default = "digits")]
        digits: usize,
    },
    /// TinyZero's Countdown: reach `target` with `count` numbers in 1..=`max`, each used once.
    Countdown {
        #[serde(default = "cd_count")]
        count: usize,
        #[serde(default = "cd_max")]
        max: i64,
    },
}

/// What to do with a dataset row that has no reference answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingAnswer {
    /// Stop with the file and line.
    Error,
    /// Leave the row out and count it.
    Skip,
}

fn missing_error() -> MissingAnswer {
    MissingAnswer::Error
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub source: DataSource,
    #[serde(default)]
    pub template: PromptTemplate,
    #[serde(default = "missing_error")]
    pub missing_answer: MissingAnswer,
}

impl DataConfig {
    pub fn validate(&self) -> Result<()> {
        match &self.source {
            DataSource::Addition { digits } if !(1..=18).contains(digits) => Err(Error::config(
                "data.source.digits",
                "must be in 1..=18 (sums must fit in a u64)",
            )),
            DataSource::Countdown { count, max } if *count < 2 || *count > 8 || *max < 1 => Err(
                Error::config("data.source", "countdown needs count in 2..=8 and max ≥ 1"),
            ),
            _ => self.template.validate(),
        }
    }

    /// The reward when the config lists no terms: the task's accuracy reward.
    pub fn default_reward(&self) -> Reward {
        match &self.source {
            DataSource::Jsonl { task, .. } | DataSource::Parquet { task, .. } => task.reward(),
            DataSource::Addition { .. } => Task::Arithmetic.reward(),
            DataSource::Countdown { .. } => Task::Countdown.reward(),
        }
    }

    /// Opens the source (reading a file whole); returns it with the count of skipped rows.
    pub fn open(&self) -> Result<(Dataset, usize)> {
        self.open_for(Needs::AnyReference)
    }

    /// Opens the source, checking that every row holds what `needs` says (a row that does not
    /// is an error naming its line, or skipped and counted, as `missing_answer` says).
    pub fn open_for(&self, needs: Needs) -> Result<(Dataset, usize)> {
        match &self.source {
            DataSource::Jsonl { path, fields, .. } => {
                let (rows, skipped) = jsonl::read_items(path, fields, self.missing_answer, needs)?;
                Ok((Dataset::rows(path.clone(), rows)?, skipped))
            }
            DataSource::Parquet { path, fields, .. } => {
                let (rows, skipped) =
                    parquet::read_items(path, fields, self.missing_answer, needs)?;
                Ok((Dataset::rows(path.clone(), rows)?, skipped))
            }
            DataSource::Addition { digits } => Ok((Dataset::Addition { digits: *digits }, 0)),
            DataSource::Countdown { count, max } => Ok((
                Dataset::Countdown {
                    count: *count,
                    max: *max,
                },
                0,
            )),
        }
    }
}

/// Problems from a file, Parquet or JSONL by its extension (see [`parquet::is_parquet`]): the
/// items and the count of rows skipped for lacking what `needs` says.
pub fn read_items(
    path: &std::path::Path,
    fields: &Fields,
    missing: MissingAnswer,
    needs: Needs,
) -> Result<(Vec<Item>, usize)> {
    match parquet::is_parquet(path) {
        true => parquet::read_items(path, fields, missing, needs),
        false => jsonl::read_items(path, fields, missing, needs),
    }
}

/// What a row must hold for a reward to judge completions of it. Checked on every row before
/// any compute, so a task that does not match the data is an error, not a run that scores 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Some reference: an answer, or numbers and target.
    AnyReference,
    /// Nothing: the reward judges the completion alone (format, language).
    Nothing,
    /// The answer (math, arithmetic).
    Answer,
    /// The numbers and the target (Countdown).
    Countdown,
    /// Valid `tests` (the code reward).
    Tests,
}

impl Needs {
    /// What the reward's accuracy term (the one that defines `correct`) judges against.
    pub fn of(reward: &Reward) -> Self {
        // The code term is external but defines `correct` from the row's tests.
        if (reward.specs().iter()).any(|s| matches!(s, RewardSpec::Code(_))) {
            return Needs::Tests;
        }
        match reward.specs().iter().find(|s| s.is_accuracy()) {
            Some(RewardSpec::Code(_)) => Needs::Tests,
            Some(RewardSpec::Math { .. } | RewardSpec::Arithmetic { .. }) => Needs::Answer,
            Some(RewardSpec::Countdown { .. }) => Needs::Countdown,
            // A program or server sees the whole row and judges what it can.
            Some(
                RewardSpec::Format { .. }
                | RewardSpec::Language { .. }
                | RewardSpec::Command { .. }
                | RewardSpec::Http { .. },
            )
            | None => Needs::Nothing,
        }
    }

    /// Why `item` cannot be judged, naming the fields; `None` when it can.
    pub fn lacks(self, item: &Item, f: &Fields) -> Option<String> {
        let cd = item.numbers.is_some() && item.target.is_some();
        match self {
            Needs::Nothing => None,
            Needs::AnyReference if item.has_reference() => None,
            Needs::AnyReference => Some(format!(
                "no `{}` field (nor `{}` and `{}`) to judge completions against",
                f.answer, f.numbers, f.target
            )),
            Needs::Answer if item.answer.is_some() => None,
            Needs::Answer => Some(format!(
                "no `{}` field: the task judges completions against it{}",
                f.answer,
                match cd {
                    true => " (the row has Countdown's fields: use --task countdown)",
                    false => "",
                }
            )),
            Needs::Countdown if cd => None,
            Needs::Countdown => Some(format!(
                "no `{}` and `{}` fields: Countdown judges completions against them{}",
                f.numbers,
                f.target,
                match item.answer.is_some() {
                    true => " (the row has an answer: use --task math or arithmetic)",
                    false => "",
                }
            )),
            Needs::Tests => aha_verify::code::parse_tests(item.row.get("tests")).err(),
        }
    }

    /// Why a Parquet file's columns cannot serve, naming them; `None` when they can.
    fn missing_columns(self, table: &parquet::Rows, f: &Fields) -> Option<String> {
        let cd = table.has(&f.numbers) && table.has(&f.target);
        let answer = table.has(&f.answer);
        let why = match self {
            Needs::Nothing => return None,
            Needs::AnyReference if answer || cd => return None,
            Needs::Answer if answer => return None,
            Needs::Countdown if cd => return None,
            Needs::Tests if table.has("tests") => return None,
            Needs::Tests => "`tests`".to_string(),
            Needs::AnyReference => {
                format!("`{}` (nor `{}` and `{}`)", f.answer, f.numbers, f.target)
            }
            Needs::Answer => format!("`{}`", f.answer),
            Needs::Countdown => format!("`{}` and `{}`", f.numbers, f.target),
        };
        Some(format!("no column {why} to judge completions against"))
    }
}

/// Rows as items: each must parse ([`jsonl::row_item`]) and hold what `needs` says; a row that
/// lacks it is an error naming its line, or skipped and counted.
pub fn items_from_rows(
    path: &std::path::Path,
    rows: Vec<rows::Row>,
    fields: &Fields,
    missing: MissingAnswer,
    needs: Needs,
) -> Result<(Vec<Item>, usize)> {
    let mut items = Vec::with_capacity(rows.len());
    let mut skipped = 0;
    for row in rows {
        let mut item = jsonl::row_item(&row.fields, fields).map_err(|m| row.error(path, m))?;
        item.line = row.line;
        match (needs.lacks(&item, fields), missing) {
            (None, _) => items.push(item),
            (Some(_), MissingAnswer::Skip) => skipped += 1,
            (Some(why), MissingAnswer::Error) => return Err(row.error(path, why)),
        }
    }
    Ok((items, skipped))
}

/// Checks the token ids of `prompt_ids` rows against the model's vocabulary before any compute;
/// the error names the file, line and field.
pub fn check_token_ids(path: &std::path::Path, items: &[Item], vocab: usize) -> Result<()> {
    for item in items {
        let Some(GivenPrompt::Ids(ids)) = &item.given else {
            continue;
        };
        if let Some(bad) = ids.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::Data {
                path: path.into(),
                line: item.line,
                message: format!(
                    "field `prompt_ids`: token id {bad} is out of range for the model's \
                     vocabulary of {vocab}"
                ),
            });
        }
    }
    Ok(())
}

/// An opened source.
#[derive(Debug, Clone)]
pub enum Dataset {
    Rows { path: PathBuf, items: Vec<Item> },
    Addition { digits: usize },
    Countdown { count: usize, max: i64 },
}

impl Dataset {
    fn rows(path: PathBuf, items: Vec<Item>) -> Result<Self> {
        if items.is_empty() {
            return Err(Error::Data {
                path,
                line: 0,
                message: "the dataset has no usable rows (rows without what the reward \
                          judges against are skipped: missing_answer = \"skip\")"
                    .into(),
            });
        }
        Ok(Dataset::Rows { path, items })
    }
}

/// A stream of items in the run's fixed order; `position` (items consumed) is its whole state.
#[derive(Debug, Clone)]
pub struct PromptStream {
    dataset: Dataset,
    seed: u64,
    position: u64,
    /// The shuffled order of the current epoch (file sources).
    epoch: Option<(u64, Vec<usize>)>,
}

impl PromptStream {
    pub fn new(dataset: Dataset, seed: u64, position: u64) -> Self {
        Self {
            dataset,
            seed,
            position,
            epoch: None,
        }
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The next `n` items, with their stream positions.
    pub fn next_batch(&mut self, n: usize) -> Vec<(u64, Item)> {
        (0..n)
            .map(|_| {
                let k = self.position;
                self.position += 1;
                (k, self.item_at(k))
            })
            .collect()
    }

    fn item_at(&mut self, k: u64) -> Item {
        match &self.dataset {
            Dataset::Rows { items, .. } => {
                let n = items.len() as u64;
                let (epoch, i) = (k / n, (k % n) as usize);
                if self.epoch.as_ref().map(|e| e.0) != Some(epoch) {
                    let mut order: Vec<usize> = (0..items.len()).collect();
                    order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(self.seed, epoch)));
                    self.epoch = Some((epoch, order));
                }
                let order = self.epoch.as_ref().map(|e| &e.1);
                items[order.map_or(i, |o| o[i])].clone()
            }
            Dataset::Addition { digits } => {
                synthetic::addition(&mut ChaCha8Rng::seed_from_u64(mix(self.seed, k)), *digits)
            }
            Dataset::Countdown { count, max } => synthetic::countdown(
                &mut ChaCha8Rng::seed_from_u64(mix(self.seed, k)),
                *count,
                *max,
            ),
        }
    }
}

/// SplitMix64-style mixing of a seed with a counter, for independent per-item streams.
pub fn mix(seed: u64, k: u64) -> u64 {
    let mut z = seed ^ k.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Dataset {
        Dataset::Rows {
            path: "x.jsonl".into(),
            items: (0..n)
                .map(|i| Item::new(i.to_string(), Some(i.to_string()), None, None))
                .collect(),
        }
    }

    #[test]
    fn order_is_a_seeded_permutation_per_epoch_and_resumable() {
        let mut s = PromptStream::new(rows(5), 7, 0);
        let a: Vec<String> = s
            .next_batch(10)
            .into_iter()
            .map(|(_, i)| i.problem)
            .collect();
        let mut e0 = a[..5].to_vec();
        e0.sort();
        assert_eq!(e0, ["0", "1", "2", "3", "4"]);
        assert_ne!(a[..5], a[5..], "each epoch is reshuffled");
        // Resuming at position 3 gives the same continuation.
        let mut r = PromptStream::new(rows(5), 7, 3);
        let b: Vec<String> = r
            .next_batch(7)
            .into_iter()
            .map(|(_, i)| i.problem)
            .collect();
        assert_eq!(b, a[3..]);
        let mut other = PromptStream::new(rows(5), 8, 0);
        let c: Vec<String> = other
            .next_batch(10)
            .into_iter()
            .map(|(_, i)| i.problem)
            .collect();
        assert_ne!(a, c);
    }

    #[test]
    fn synthetic_items_depend_on_position_only() {
        let mut s = PromptStream::new(Dataset::Addition { digits: 4 }, 1, 0);
        let a = s.next_batch(4);
        let mut r = PromptStream::new(Dataset::Addition { digits: 4 }, 1, 2);
        assert_eq!(r.next_batch(2), a[2..]);
    }
}
