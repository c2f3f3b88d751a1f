//! Scoring rows of completions: the library side of `aha reward`, and the task names and
//! options its flags (and `aha eval`'s) map onto.
//!
//! Rows are `{"completion": "...", "answer": "..."}` (Countdown: `"numbers"` and `"target"`
//! instead of, or beside, `"answer"`; the code task: `"tests"`, which a reward with a code term
//! requires on every row). Every field but `completion` and `prompt` is the row an external
//! term (a reward program, a server) sees; rows are scored in batches of [`BATCH_LINES`] so such
//! a term is called once per batch. A row may instead carry `"completions": [...]` (`aha eval
//! --output` writes one line per problem so): each is scored with the row's other fields.
//! Output lines are `{"reward": float|null, "correct": bool|null, "components": {...}}`, one per
//! completion, in order.
//!
//! Files are not read here: the CLI reads them with `aha_train::data::rows`, the reader every
//! command shares (JSONL or Parquet, lines numbered as an editor does), and hands over each row
//! with its line number; this crate sits below aha-train and cannot call it. Every row is checked
//! before any is scored, so a malformed one (named by file and line) stops the command before a
//! reward program or server is called; nothing is skipped silently.

use std::io::Write;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::batch::RewardInput;
use crate::code::{parse_tests, CodeConfig};
use crate::compose::{Reference, Reward, RewardSpec};
use crate::extract::ExtractConfig;
use crate::format::ThinkRule;
use crate::math::DEFAULT_REL_TOL;
use crate::Error;

/// A task name accepted by `aha reward --task`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Math,
    Countdown,
    Arithmetic,
    Format,
    /// Python run against the row's `tests` in a sandbox (see `code`).
    Code,
}

impl FromStr for Task {
    type Err = Error;

    fn from_str(s: &str) -> Result<Task, Error> {
        match s {
            "math" => Ok(Task::Math),
            "countdown" => Ok(Task::Countdown),
            "arithmetic" => Ok(Task::Arithmetic),
            "format" => Ok(Task::Format),
            "code" => Ok(Task::Code),
            _ => Err(Error::UnknownTask(s.to_string())),
        }
    }
}

/// The verifier options a `[[reward]]` table takes, for building a task's reward elsewhere
/// (`aha reward`, `aha eval` flags). Each applies to the terms that have it; the defaults are
/// those of a `[[reward]]` table that leaves the option out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskOptions {
    /// How the answer is found (math, countdown).
    pub extract: ExtractConfig,
    /// Decimal tolerance (math).
    pub rel_tol: f64,
    /// Countdown: every number must be used exactly once.
    pub use_all: bool,
    /// The think rule of the format and arithmetic terms; `None` keeps each term's default.
    pub think: Option<ThinkRule>,
}

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions {
            extract: ExtractConfig::default(),
            rel_tol: DEFAULT_REL_TOL,
            use_all: true,
            think: None,
        }
    }
}

impl Task {
    /// The task's reward with default options; see [`Task::reward_with`].
    pub fn reward(self) -> Reward {
        self.reward_with(&TaskOptions::default())
    }

    /// The task's reward: its accuracy term with weight 1 (the reward is 1 only for a correct
    /// answer), plus the format term with weight 0 so `components` shows it without moving the
    /// reward. `format` alone scores the R1 template.
    pub fn reward_with(self, opts: &TaskOptions) -> Reward {
        let format0 = RewardSpec::Format {
            weight: 0.0,
            think: opts.think.unwrap_or(ThinkRule::Required),
        };
        let specs = match self {
            Task::Math => vec![
                RewardSpec::Math {
                    weight: 1.0,
                    extract: opts.extract.clone(),
                    rel_tol: opts.rel_tol,
                },
                format0,
            ],
            Task::Countdown => vec![
                RewardSpec::Countdown {
                    weight: 1.0,
                    use_all: opts.use_all,
                    extract: opts.extract.clone(),
                },
                format0,
            ],
            Task::Arithmetic => vec![RewardSpec::Arithmetic {
                weight: 1.0,
                think: opts.think.unwrap_or(ThinkRule::Optional),
            }],
            Task::Format => vec![RewardSpec::Format {
                weight: 1.0,
                think: opts.think.unwrap_or(ThinkRule::Required),
            }],
            Task::Code => vec![RewardSpec::Code(CodeConfig::default()), format0],
        };
        match Reward::new(specs) {
            Ok(r) => r,
            // The lists above are non-empty with finite weights and valid default options; the
            // code term starts its sandbox on first use.
            Err(e) => unreachable!("built-in reward for {self:?} is invalid: {e}"),
        }
    }
}

/// Totals over a scored file.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Scored lines (blank lines are not counted).
    pub lines: usize,
    /// Lines whose reward was not `None`.
    pub judged: usize,
    /// Lines judged correct.
    pub correct: usize,
    /// Lines whose correctness could be judged.
    pub correct_judged: usize,
    /// Mean reward over judged lines.
    pub mean_reward: Option<f64>,
    /// The external terms' log lines (e.g. the code reward's executions per second).
    pub reports: Vec<String>,
}

/// One parsed input line: the completion, the fields built-in verifiers read, and the row.
struct InputLine {
    completion: String,
    prompt: String,
    answer: Option<String>,
    numbers: Option<Vec<i64>>,
    target: Option<i64>,
    /// Every field but `completion` and `prompt`, for external terms.
    row: Map<String, Value>,
}

impl InputLine {
    /// The completions of one input row: its `completion`, or each of its `completions` (the
    /// per-problem lines of `aha eval --output`), with the row's other fields.
    fn parse_all(mut row: Map<String, Value>) -> Result<Vec<InputLine>, String> {
        match (row.contains_key("completion"), row.remove("completions")) {
            (false, Some(Value::Array(all))) => all
                .into_iter()
                .enumerate()
                .map(|(i, c)| match c {
                    Value::String(c) => {
                        let mut one = row.clone();
                        one.insert("completion".into(), Value::String(c));
                        InputLine::parse(one)
                    }
                    other => Err(format!(
                        "\"completions\"[{i}] must be a string, got {other}"
                    )),
                })
                .collect(),
            (false, Some(other)) => Err(format!(
                "\"completions\" must be an array of strings, got {other}"
            )),
            (_, _) => InputLine::parse(row).map(|one| vec![one]),
        }
    }

    fn parse(mut row: Map<String, Value>) -> Result<InputLine, String> {
        let completion = match row.remove("completion") {
            Some(Value::String(s)) => s,
            Some(other) => return Err(format!("\"completion\" must be a string, got {other}")),
            None => return Err("missing field \"completion\"".into()),
        };
        let prompt = match row.remove("prompt") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s,
            Some(other) => return Err(format!("\"prompt\" must be a string, got {other}")),
        };
        let answer = match row.get("answer") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => return Err(format!("\"answer\" must be a string, got {other}")),
        };
        let numbers = match row.get("numbers") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                serde_json::from_value(v.clone())
                    .map_err(|_| format!("\"numbers\" must be an array of integers, got {v}"))?,
            ),
        };
        let target = match row.get("target") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .ok_or_else(|| format!("\"target\" must be an integer, got {v}"))?,
            ),
        };
        Ok(InputLine {
            completion,
            prompt,
            answer,
            numbers,
            target,
            row,
        })
    }
}

/// Lines scored per call of the reward: external terms see batches of this size.
const BATCH_LINES: usize = 256;

#[derive(Serialize)]
struct OutputLine<'a> {
    reward: Option<f32>,
    correct: Option<bool>,
    components: Components<'a>,
}

/// Term values as a JSON object in the reward's term order (serde_json's `Map` would sort).
struct Components<'a>(&'a [String], &'a [Option<f32>]);

impl Serialize for Components<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().zip(self.1))
    }
}

/// Scores `rows` (each with its 1-based line in `input_name`) with `reward`, writing one JSON
/// line per completion to `output`. Every row is checked first: a malformed one is an error
/// naming `input_name` and its line, and nothing is scored. A row without the reference a
/// verifier needs is scored null, not refused.
pub fn score_rows(
    reward: &Reward,
    rows: impl IntoIterator<Item = (usize, Map<String, Value>)>,
    input_name: &str,
    mut output: impl Write,
) -> Result<Summary, Error> {
    // The code reward judges against each row's tests: a row without them is an error here.
    let need_tests = reward
        .specs()
        .iter()
        .any(|s| matches!(s, RewardSpec::Code(_)));
    let mut lines = Vec::new();
    for (line, row) in rows {
        let at = |message: String| Error::Line {
            file: input_name.to_string(),
            line,
            message,
        };
        let parsed = InputLine::parse_all(row).map_err(at)?;
        if need_tests {
            if let Some(message) = parsed
                .iter()
                .find_map(|r| parse_tests(r.row.get("tests")).err())
            {
                return Err(at(message));
            }
        }
        lines.extend(parsed);
    }
    let mut sum = Summary::default();
    let mut total = 0.0f64;
    for batch in lines.chunks(BATCH_LINES) {
        for scored in score_batch(reward, batch)? {
            let out = OutputLine {
                reward: scored.reward,
                correct: scored.correct,
                components: Components(reward.names(), &scored.components),
            };
            serde_json::to_writer(&mut output, &out).map_err(|e| Error::Write(e.into()))?;
            output.write_all(b"\n").map_err(Error::Write)?;
            sum.lines += 1;
            if let Some(r) = scored.reward {
                sum.judged += 1;
                total += f64::from(r);
            }
            if let Some(c) = scored.correct {
                sum.correct_judged += 1;
                sum.correct += usize::from(c);
            }
        }
    }
    output.flush().map_err(Error::Write)?;
    sum.mean_reward = (sum.judged > 0).then(|| total / sum.judged as f64);
    sum.reports = reward.reports();
    Ok(sum)
}

fn score_batch(reward: &Reward, batch: &[InputLine]) -> Result<Vec<crate::Scored>, Error> {
    let inputs: Vec<RewardInput<'_>> = (batch.iter().enumerate())
        .map(|(id, l)| RewardInput {
            id,
            prompt: &l.prompt,
            completion: &l.completion,
            row: &l.row,
        })
        .collect();
    let references: Vec<Reference<'_>> = batch
        .iter()
        .map(|l| Reference {
            answer: l.answer.as_deref(),
            numbers: l.numbers.as_deref(),
            target: l.target,
        })
        .collect();
    reward.score_batch(&inputs, &references)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores JSONL text (the CLI reads files with aha_train's row reader; blank lines count).
    fn run(task: Task, input: &str) -> Result<(Summary, String), Error> {
        let rows = (input.lines().enumerate())
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (i + 1, serde_json::from_str(l).unwrap()));
        let mut out = Vec::new();
        let s = score_rows(&task.reward(), rows, "c.jsonl", &mut out)?;
        Ok((s, String::from_utf8(out).unwrap()))
    }

    #[test]
    fn task_options_default_to_what_a_reward_table_leaves_out() {
        let d = TaskOptions::default();
        let table = |t: &str| serde_json::from_str::<RewardSpec>(t).unwrap();
        assert_eq!(
            table(r#"{"kind": "math", "weight": 1.0}"#),
            RewardSpec::Math {
                weight: 1.0,
                extract: d.extract.clone(),
                rel_tol: d.rel_tol
            }
        );
        assert_eq!(
            table(r#"{"kind": "countdown", "weight": 1.0}"#),
            RewardSpec::Countdown {
                weight: 1.0,
                use_all: d.use_all,
                extract: d.extract.clone()
            }
        );
        let opts: TaskOptions = serde_json::from_str(r#"{"extract": "lenient"}"#).unwrap();
        assert_eq!(opts.extract, ExtractConfig::lenient());
        assert_eq!((opts.rel_tol, opts.use_all), (d.rel_tol, d.use_all));
    }

    #[test]
    fn scores_in_order() {
        let input = concat!(
            r#"{"completion": "<think>a</think><answer>\\frac12</answer>", "answer": "0.5"}"#,
            "\n\n",
            r#"{"completion": "<answer>3</answer>", "answer": 4, "id": 7}"#,
            "\n"
        );
        let (sum, out) = run(Task::Math, input).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"reward":1.0,"correct":true,"components":{"math":1.0,"format":1.0}}"#,
                r#"{"reward":0.0,"correct":false,"components":{"math":0.0,"format":0.0}}"#,
            ]
        );
        assert_eq!((sum.lines, sum.judged, sum.correct), (2, 2, 1));
        assert_eq!(sum.mean_reward, Some(0.5));
    }

    #[test]
    fn countdown_and_arithmetic() {
        let cd =
            r#"{"completion": "<answer>(50-25)*3</answer>", "numbers": [3, 25, 50], "target": 75}"#;
        let (_, out) = run(Task::Countdown, cd).unwrap();
        assert!(out.starts_with(r#"{"reward":1.0,"correct":true"#), "{out}");
        let ar = r#"{"completion": "<answer>10198</answer>", "answer": "10198"}"#;
        let (_, out) = run(Task::Arithmetic, ar).unwrap();
        assert_eq!(
            out.trim(),
            r#"{"reward":1.0,"correct":true,"components":{"arithmetic":1.0}}"#
        );
        let fm = r#"{"completion": "<answer>1</answer>"}"#;
        let (_, out) = run(Task::Format, fm).unwrap();
        assert_eq!(
            out.trim(),
            r#"{"reward":0.0,"correct":null,"components":{"format":0.0}}"#
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let bad = "{\"completion\": \"x\", \"answer\": \"1\"}\n\n{\"completion\": 5}\n";
        let mut out = Vec::new();
        let rows = [
            (
                1,
                serde_json::json!({"completion": "<answer>1</answer>", "answer": "1"}),
            ),
            (3, serde_json::json!({"completion": 5})),
        ]
        .map(|(l, v)| (l, v.as_object().unwrap().clone()));
        let msg = score_rows(&Task::Math.reward(), rows, "c.jsonl", &mut out)
            .unwrap_err()
            .to_string();
        assert_eq!(msg, "c.jsonl:3: \"completion\" must be a string, got 5");
        assert!(out.is_empty(), "every row is checked before any is scored");
        let msg = run(Task::Math, bad).unwrap_err().to_string();
        assert!(msg.starts_with("c.jsonl:3: "), "{msg}");
        // A line without the task's reference is not judged (null), and the next one is.
        let missing =
            "\n{\"completion\": \"x\"}\n{\"completion\": \"<answer>1</answer>\", \"answer\": 1}";
        let (sum, out) = run(Task::Math, missing).unwrap();
        assert!(out.starts_with(r#"{"reward":null,"correct":null"#), "{out}");
        assert_eq!((sum.lines, sum.judged, sum.correct), (2, 1, 1));
        let cd = "{\"completion\": \"x\", \"numbers\": [1]}";
        let (sum, _) = run(Task::Countdown, cd).unwrap();
        assert_eq!(sum.judged, 0);
        let msg = "maths".parse::<Task>().unwrap_err().to_string();
        assert!(msg.contains("unknown task \"maths\""), "{msg}");
    }
}
