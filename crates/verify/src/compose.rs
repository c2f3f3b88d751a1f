//! Weighted composition of verifiers into one scalar reward, configured from TOML.
//!
//! A [`RewardSpec`] is one `[[reward]]` table (`{ kind = "math", weight = 1.0 }`); a [`Reward`]
//! is the validated list. Each term returns `Option<f32>`; `None` means "cannot judge" (no
//! reference answer, no think block for the language reward) and is excluded from the sum, as
//! TRL does with its NaN rewards, never counted as 0. This file holds no verification logic.
//!
//! Two kinds of term: built-in verifiers, pure functions of one completion, and external terms
//! (a [`BatchReward`]: a user's program, an HTTP server, …), started once by [`Reward::new`]
//! and called once per batch by [`Reward::score_batch`]. Within a batch the external terms run
//! on their own threads, concurrently with each other and with the built-in verifiers, so a
//! slow program costs max(program, verifiers), not the sum.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::arithmetic::arithmetic_reward;
use crate::batch::{BatchReward, Judgement, RewardInput};
use crate::code::{CodeConfig, CodeTerm, SandboxError};
use crate::command::CommandReward;
use crate::countdown::countdown_reward;
use crate::extract::{extract, reference_answer, ExtractConfig};
use crate::format::{format_reward, ThinkRule};
use crate::http::HttpReward;
use crate::language::{language_reward, Script};
use crate::math::{equivalent_with, DEFAULT_REL_TOL};
use crate::Error;

fn default_rel_tol() -> f64 {
    DEFAULT_REL_TOL
}

fn yes() -> bool {
    true
}

fn optional() -> ThinkRule {
    ThinkRule::Optional
}

/// One weighted reward term, as written in the trainer's config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RewardSpec {
    /// 1 when the extracted answer is equivalent to the reference (see `math.rs`).
    Math {
        weight: f32,
        /// `"strict"` (default), `"lenient"` or a table (see `extract.rs`).
        #[serde(default)]
        extract: ExtractConfig,
        /// How far (relative) a decimal answer may be from an exact reference (`math.rs`
        /// rule 2b).
        #[serde(default = "default_rel_tol")]
        rel_tol: f64,
    },
    /// 1 for the R1 template (see `format.rs`).
    Format {
        weight: f32,
        #[serde(default)]
        think: ThinkRule,
    },
    /// 1 for a well-formed, exactly-correct integer (see `arithmetic.rs`).
    Arithmetic {
        weight: f32,
        #[serde(default = "optional")]
        think: ThinkRule,
    },
    /// 1 for a Countdown solution (see `countdown.rs`).
    Countdown {
        weight: f32,
        #[serde(default = "yes")]
        use_all: bool,
        #[serde(default)]
        extract: ExtractConfig,
    },
    /// Share of the think block in `script` (see `language.rs`).
    Language {
        weight: f32,
        script: Script,
        #[serde(default)]
        think: ThinkRule,
    },
    /// The user's own program, spoken to in JSON lines over stdio (see `command.rs`).
    Command {
        weight: f32,
        /// Program and arguments, e.g. `["python3", "my_reward.py"]`, run from aha's working
        /// directory.
        command: Vec<String>,
        /// Seconds the program may take to answer one batch.
        #[serde(default = "sixty")]
        timeout_s: f64,
    },
    /// A reward server: a batch POSTed as JSON, rewards in the reply (see `http.rs`).
    Http {
        weight: f32,
        /// `http://host:port/path` (plain HTTP).
        url: String,
        /// Seconds one attempt may take.
        #[serde(default = "sixty")]
        timeout_s: f64,
        /// Further attempts after a failed connection, a timeout or a 5xx status.
        #[serde(default = "three")]
        retries: u32,
        /// Seconds before the first retry; each later one waits twice as long.
        #[serde(default = "half")]
        backoff_s: f64,
    },
    /// The completion's python block run against the row's `tests` in a sandbox (see `code`).
    Code(CodeConfig),
}

fn three() -> u32 {
    3
}

fn half() -> f64 {
    0.5
}

fn sixty() -> f64 {
    60.0
}

/// A timeout in seconds as a duration; `None` unless positive and finite.
fn seconds(s: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(s).ok().filter(|d| !d.is_zero())
}

impl RewardSpec {
    /// The term's name in logs and JSONL `components`.
    pub fn kind(&self) -> &'static str {
        match self {
            RewardSpec::Math { .. } => "math",
            RewardSpec::Format { .. } => "format",
            RewardSpec::Arithmetic { .. } => "arithmetic",
            RewardSpec::Countdown { .. } => "countdown",
            RewardSpec::Language { .. } => "language",
            RewardSpec::Command { .. } => "command",
            RewardSpec::Http { .. } => "http",
            RewardSpec::Code(_) => "code",
        }
    }

    /// The term's weight.
    pub fn weight(&self) -> f32 {
        match self {
            RewardSpec::Math { weight, .. }
            | RewardSpec::Format { weight, .. }
            | RewardSpec::Arithmetic { weight, .. }
            | RewardSpec::Countdown { weight, .. }
            | RewardSpec::Language { weight, .. }
            | RewardSpec::Command { weight, .. }
            | RewardSpec::Http { weight, .. } => *weight,
            RewardSpec::Code(c) => c.weight,
        }
    }

    /// Whether the term measures correctness (and so defines `correct`).
    pub fn is_accuracy(&self) -> bool {
        matches!(
            self,
            RewardSpec::Math { .. } | RewardSpec::Arithmetic { .. } | RewardSpec::Countdown { .. }
        )
    }

    /// Whether the term is judged outside aha, a batch at a time (see [`BatchReward`]).
    pub fn is_external(&self) -> bool {
        match self {
            RewardSpec::Math { .. }
            | RewardSpec::Format { .. }
            | RewardSpec::Arithmetic { .. }
            | RewardSpec::Countdown { .. }
            | RewardSpec::Language { .. } => false,
            RewardSpec::Command { .. } | RewardSpec::Http { .. } => true,
            RewardSpec::Code(_) => true,
        }
    }

    /// Checks what can be checked without starting anything (weights, commands, URLs).
    fn check(&self, index: usize) -> Result<(), Error> {
        if !self.weight().is_finite() {
            return Err(Error::BadWeight {
                index,
                kind: self.kind(),
                weight: self.weight(),
            });
        }
        let bad = |message: String| Error::BadTerm {
            index,
            kind: self.kind(),
            message,
        };
        match self {
            RewardSpec::Command {
                command, timeout_s, ..
            } => {
                if command.first().is_none_or(|p| p.is_empty()) {
                    return Err(bad("`command` must name a program".into()));
                }
                if seconds(*timeout_s).is_none() {
                    return Err(bad(format!("timeout_s = {timeout_s} must be > 0")));
                }
            }
            RewardSpec::Http {
                url,
                timeout_s,
                backoff_s,
                ..
            } => {
                if !url.starts_with("http://") {
                    return Err(bad(format!(
                        "url {url:?} must start with http:// (aha speaks plain HTTP)"
                    )));
                }
                if seconds(*timeout_s).is_none() {
                    return Err(bad(format!("timeout_s = {timeout_s} must be > 0")));
                }
                if !(backoff_s.is_finite() && *backoff_s >= 0.0) {
                    return Err(bad(format!("backoff_s = {backoff_s} must be ≥ 0")));
                }
            }
            RewardSpec::Code(c) => {
                c.limits().map_err(|e| match e {
                    SandboxError::Config(m) => bad(m),
                    other => bad(other.to_string()),
                })?;
            }
            RewardSpec::Math { .. }
            | RewardSpec::Format { .. }
            | RewardSpec::Arithmetic { .. }
            | RewardSpec::Countdown { .. }
            | RewardSpec::Language { .. } => {}
        }
        Ok(())
    }

    /// Starts an external term (spawns its program, builds its client); `None` for built-ins.
    fn start(&self) -> Result<Option<Arc<dyn BatchReward>>, Error> {
        match self {
            RewardSpec::Math { .. }
            | RewardSpec::Format { .. }
            | RewardSpec::Arithmetic { .. }
            | RewardSpec::Countdown { .. }
            | RewardSpec::Language { .. } => Ok(None),
            RewardSpec::Command {
                command, timeout_s, ..
            } => {
                let timeout = seconds(*timeout_s).unwrap_or(Duration::from_secs(60));
                Ok(Some(Arc::new(CommandReward::start(command, timeout)?)))
            }
            RewardSpec::Http {
                url,
                timeout_s,
                retries,
                backoff_s,
                ..
            } => {
                let timeout = seconds(*timeout_s).unwrap_or(Duration::from_secs(60));
                let backoff = Duration::try_from_secs_f64(*backoff_s).unwrap_or_default();
                Ok(Some(Arc::new(HttpReward::new(
                    url, timeout, *retries, backoff,
                ))))
            }
            RewardSpec::Code(c) => Ok(Some(Arc::new(CodeTerm::new(c.clone())))),
        }
    }

    /// This built-in term alone on one completion; `None` for an external term (which judges
    /// batches: see [`Reward::score_batch`]).
    pub fn score(&self, completion: &str, reference: &Reference<'_>) -> Option<f32> {
        match self {
            RewardSpec::Math {
                extract: cfg,
                rel_tol,
                ..
            } => {
                let gold = reference.answer.map(str::trim).filter(|a| !a.is_empty())?;
                let gold = reference_answer(gold);
                let ok = extract(completion, cfg)
                    .is_some_and(|p| equivalent_with(&gold, &p.text, *rel_tol));
                Some(if ok { 1.0 } else { 0.0 })
            }
            RewardSpec::Format { think, .. } => Some(format_reward(completion, *think)),
            RewardSpec::Arithmetic { think, .. } => {
                arithmetic_reward(completion, reference.answer?, *think)
            }
            RewardSpec::Countdown {
                use_all,
                extract: cfg,
                ..
            } => Some(countdown_reward(
                completion,
                reference.numbers?,
                reference.target?,
                *use_all,
                cfg,
            )),
            RewardSpec::Language { script, think, .. } => {
                language_reward(completion, *script, *think)
            }
            RewardSpec::Command { .. } | RewardSpec::Http { .. } => None,
            RewardSpec::Code(_) => None,
        }
    }
}

/// What a completion is judged against. Fields a verifier needs but finds missing make it
/// return `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reference<'a> {
    /// The reference answer (`"10198"`, `"\\frac{1}{2}"`, or a solution ending in `\boxed{}` or
    /// `#### 42`, from which the final answer is taken).
    pub answer: Option<&'a str>,
    /// Countdown: the numbers available.
    pub numbers: Option<&'a [i64]>,
    /// Countdown: the target.
    pub target: Option<i64>,
}

impl<'a> Reference<'a> {
    /// A reference that is just an answer string.
    pub fn answer(answer: &'a str) -> Self {
        Reference {
            answer: Some(answer),
            ..Reference::default()
        }
    }
}

/// The result of scoring one completion with a [`Reward`].
#[derive(Clone, Debug, PartialEq)]
pub struct Scored {
    /// Σ weight × value over the terms that could judge; `None` when no weighted term could.
    pub reward: Option<f32>,
    /// The first accuracy term's verdict (value ≥ 1), `None` if there is none or it could not
    /// judge.
    pub correct: Option<bool>,
    /// Unweighted value of each term, aligned with [`Reward::names`].
    pub components: Vec<Option<f32>>,
}

/// A validated, weighted list of verifiers, with its external terms started. Cloning shares
/// the started terms (one program per term, however many clones).
#[derive(Clone)]
pub struct Reward {
    specs: Vec<RewardSpec>,
    names: Vec<String>,
    /// Aligned with `specs`: the started external terms.
    external: Vec<Option<Arc<dyn BatchReward>>>,
}

impl std::fmt::Debug for Reward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reward")
            .field("specs", &self.specs)
            .finish_non_exhaustive()
    }
}

impl Reward {
    /// Validates a list of terms (at least one, finite weights, well-formed external terms)
    /// without starting anything: what config validation uses.
    pub fn check(specs: &[RewardSpec]) -> Result<(), Error> {
        if specs.is_empty() {
            return Err(Error::NoTerms);
        }
        specs.iter().enumerate().try_for_each(|(i, s)| s.check(i))
    }

    /// Validates a list of terms and starts the external ones. Terms of the same kind are named
    /// `math`, `math_2`, ….
    pub fn new(specs: Vec<RewardSpec>) -> Result<Reward, Error> {
        Reward::check(&specs)?;
        let names = specs
            .iter()
            .enumerate()
            .map(|(index, spec)| {
                let seen = specs[..index]
                    .iter()
                    .filter(|s| s.kind() == spec.kind())
                    .count();
                match seen {
                    0 => spec.kind().to_string(),
                    n => format!("{}_{}", spec.kind(), n + 1),
                }
            })
            .collect();
        let external = specs
            .iter()
            .map(RewardSpec::start)
            .collect::<Result<_, _>>()?;
        Ok(Reward {
            specs,
            names,
            external,
        })
    }

    /// Whether any term judges outside aha (so scoring can fail and is worth batching).
    pub fn has_external(&self) -> bool {
        self.external.iter().any(Option::is_some)
    }

    /// The external terms' log lines about their work so far (see [`BatchReward::report`]).
    pub fn reports(&self) -> Vec<String> {
        self.external
            .iter()
            .flatten()
            .filter_map(|e| e.report())
            .collect()
    }

    /// Term names, in order, for logging.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The terms, in order.
    pub fn specs(&self) -> &[RewardSpec] {
        &self.specs
    }

    /// Scores one completion with the built-in terms; external terms count as "cannot judge"
    /// here. Callers whose reward may have external terms use [`Reward::score_batch`].
    pub fn score(&self, completion: &str, reference: &Reference<'_>) -> Scored {
        self.combine(&self.builtin_judgements(completion, reference))
    }

    /// Scores a batch: `inputs[i]` is judged against `references[i]`. Each external term is
    /// called once with the whole batch, on its own thread, while this thread runs the built-in
    /// terms. An external term's failure (its program died, its server answered garbage) is the
    /// error; no partial result is returned.
    pub fn score_batch(
        &self,
        inputs: &[RewardInput<'_>],
        references: &[Reference<'_>],
    ) -> Result<Vec<Scored>, Error> {
        if inputs.len() != references.len() {
            return Err(Error::Batch(format!(
                "{} inputs but {} references",
                inputs.len(),
                references.len()
            )));
        }
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        // (N, terms): built-in verdicts, then external ones filled in per term.
        let mut judged: Vec<Vec<Judgement>> = std::thread::scope(|scope| {
            let running: Vec<_> = (self.external.iter().enumerate())
                .filter_map(|(t, ext)| Some((t, ext.as_ref()?)))
                .map(|(t, ext)| (t, scope.spawn(move || ext.score_batch(inputs))))
                .collect();
            let mut judged: Vec<Vec<Judgement>> = inputs
                .iter()
                .zip(references)
                .map(|(input, reference)| self.builtin_judgements(input.completion, reference))
                .collect();
            for (t, handle) in running {
                let verdicts = handle.join().map_err(|_| {
                    Error::Batch(format!("reward term `{}` panicked", self.names[t]))
                })??;
                if verdicts.len() != inputs.len() {
                    return Err(Error::Batch(format!(
                        "reward term `{}` returned {} verdicts for {} inputs",
                        self.names[t],
                        verdicts.len(),
                        inputs.len()
                    )));
                }
                for (row, v) in judged.iter_mut().zip(verdicts) {
                    row[t] = v;
                }
            }
            Ok::<_, Error>(judged)
        })?;
        Ok(judged.iter_mut().map(|j| self.combine(j)).collect())
    }

    /// Every built-in term's verdict (`correct` set by accuracy terms); external terms are left
    /// empty for [`Reward::score_batch`] to fill in.
    fn builtin_judgements(&self, completion: &str, reference: &Reference<'_>) -> Vec<Judgement> {
        (self.specs.iter().zip(&self.external))
            .map(|(spec, ext)| {
                if ext.is_some() {
                    return Judgement::default();
                }
                let reward = spec.score(completion, reference);
                Judgement {
                    reward,
                    correct: spec
                        .is_accuracy()
                        .then(|| reward.map(|v| v >= 1.0))
                        .flatten(),
                }
            })
            .collect()
    }

    /// Σ weight × value over the terms that judged; `correct` from the first accuracy term
    /// (an external term counts as one where it reports `correct`).
    fn combine(&self, judged: &[Judgement]) -> Scored {
        let mut reward = None;
        for (spec, j) in self.specs.iter().zip(judged) {
            if let (Some(v), true) = (j.reward, spec.weight() != 0.0) {
                *reward.get_or_insert(0.0) += spec.weight() * v;
            }
        }
        let correct = (self.specs.iter().zip(&self.external).zip(judged))
            .find(|((s, ext), j)| match ext {
                Some(_) => j.correct.is_some(),
                None => s.is_accuracy(),
            })
            .and_then(|(_, j)| j.correct);
        Scored {
            reward,
            correct,
            components: judged.iter().map(|j| j.reward).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        reward: Vec<RewardSpec>,
    }

    fn specs(json: &str) -> Result<Vec<RewardSpec>, serde_json::Error> {
        serde_json::from_str::<Cfg>(json).map(|c| c.reward)
    }

    #[test]
    fn config_round_trip_and_rejections() {
        let s = specs(
            r#"{"reward": [{"kind": "math", "weight": 1.0},
                {"kind": "format", "weight": 0.5, "think": "prefilled"},
                {"kind": "math", "weight": 0.1, "extract": {"last_number": true}},
                {"kind": "language", "weight": 0.1, "script": "latin"}]}"#,
        )
        .unwrap();
        let r = Reward::new(s).unwrap();
        assert_eq!(r.names(), ["math", "format", "math_2", "language"]);
        assert!(specs(r#"{"reward": [{"kind": "math", "weight": 1, "bogus": 1}]}"#).is_err());
        assert!(specs(r#"{"reward": [{"kind": "maths", "weight": 1}]}"#).is_err());
        assert!(specs(r#"{"reward": [{"kind": "math"}]}"#).is_err());
        assert!(
            specs(r#"{"reward": [{"kind": "math", "weight": 1, "extract": {"x": 1}}]}"#).is_err()
        );
        assert!(matches!(Reward::new(vec![]), Err(Error::NoTerms)));
        let nan = vec![RewardSpec::Format {
            weight: f32::NAN,
            think: ThinkRule::Required,
        }];
        assert!(matches!(Reward::new(nan), Err(Error::BadWeight { .. })));
    }

    #[test]
    fn none_is_excluded_not_zero() {
        let r = Reward::new(vec![
            RewardSpec::Math {
                weight: 1.0,
                extract: ExtractConfig::default(),
                rel_tol: DEFAULT_REL_TOL,
            },
            RewardSpec::Format {
                weight: 0.5,
                think: ThinkRule::Required,
            },
        ])
        .unwrap();
        let good = "<think>half</think><answer>\\frac12</answer>";
        let s = r.score(good, &Reference::answer("0.5"));
        assert_eq!(s.reward, Some(1.5));
        assert_eq!(s.correct, Some(true));
        assert_eq!(s.components, vec![Some(1.0), Some(1.0)]);
        let s = r.score(good, &Reference::default());
        assert_eq!(s.reward, Some(0.5));
        assert_eq!(s.correct, None);
        assert_eq!(s.components, vec![None, Some(1.0)]);
        let s = r.score("<answer>2</answer>", &Reference::answer("\\boxed{3}"));
        assert_eq!((s.reward, s.correct), (Some(0.0), Some(false)));
        let lang = Reward::new(vec![RewardSpec::Language {
            weight: 1.0,
            script: Script::Latin,
            think: ThinkRule::Required,
        }])
        .unwrap();
        assert_eq!(
            lang.score("<answer>1</answer>", &Reference::default())
                .reward,
            None
        );
    }

    /// An external term that echoes a row field, so the test sees which row reached it.
    struct RowReward;

    impl BatchReward for RowReward {
        fn score_batch(&self, inputs: &[RewardInput<'_>]) -> Result<Vec<Judgement>, Error> {
            Ok(inputs
                .iter()
                .map(|i| Judgement {
                    reward: i
                        .row
                        .get("score")
                        .and_then(serde_json::Value::as_f64)
                        .map(|x| x as f32),
                    correct: i.row.get("ok").and_then(serde_json::Value::as_bool),
                })
                .collect())
        }
    }

    #[test]
    fn batch_combines_external_and_builtin_terms() {
        let mut r = Reward::new(vec![
            RewardSpec::Format {
                weight: 0.5,
                think: ThinkRule::Required,
            },
            RewardSpec::Format {
                weight: 2.0,
                think: ThinkRule::Required,
            },
        ])
        .unwrap();
        // The second term stands in for an external one.
        r.external[1] = Some(Arc::new(RowReward));
        let rows: Vec<serde_json::Map<String, serde_json::Value>> = [
            r#"{"score": 0.25, "ok": true}"#,
            r#"{"score": null}"#,
            r#"{"score": 1}"#,
        ]
        .iter()
        .map(|j| serde_json::from_str(j).unwrap())
        .collect();
        let inputs: Vec<RewardInput<'_>> = (rows.iter().enumerate())
            .map(|(id, row)| RewardInput {
                id,
                prompt: "p",
                completion: "<think>a</think><answer>1</answer>",
                row,
            })
            .collect();
        let refs = vec![Reference::default(); 3];
        let s = r.score_batch(&inputs, &refs).unwrap();
        assert_eq!(s[0].reward, Some(0.5 + 2.0 * 0.25));
        assert_eq!(s[0].correct, Some(true));
        assert_eq!(s[1].components, vec![Some(1.0), None], "null is excluded");
        assert_eq!((s[1].reward, s[1].correct), (Some(0.5), None));
        assert_eq!(s[2].reward, Some(2.5));
        assert!(matches!(
            r.score_batch(&inputs, &refs[..2]),
            Err(Error::Batch(_))
        ));
        // The one-completion path leaves the external term unjudged.
        assert_eq!(r.score("x", &Reference::default()).components[1], None);
    }
}
