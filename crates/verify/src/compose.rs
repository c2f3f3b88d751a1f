//! Weighted composition of verifiers into one scalar reward, configured from TOML.
//!
//! A [`RewardSpec`] is one `[[reward]]` table (`{ kind = "math", weight = 1.0 }`); a [`Reward`]
//! is the validated list. Each term returns `Option<f32>`; `None` means "cannot judge" (no
//! reference answer, no think block for the language reward) and is excluded from the sum, as
//! TRL does with its NaN rewards, never counted as 0. This file holds no verification logic.

use serde::{Deserialize, Serialize};

use crate::arithmetic::arithmetic_reward;
use crate::countdown::countdown_reward;
use crate::extract::{extract, ExtractConfig};
use crate::format::{format_reward, ThinkRule};
use crate::language::{language_reward, Script};
use crate::math::equivalent;
use crate::Error;

/// How a reference answer is read: a MATH solution's last box or a GSM8K solution's `####`,
/// else the whole string.
const GOLD_EXTRACT: ExtractConfig = ExtractConfig {
    answer_tag: false,
    multiple_answers: crate::extract::MultipleAnswers::Last,
    allow_unclosed_tag: false,
    boxed: Some(crate::extract::Pick::Last),
    phrase: false,
    gsm8k: true,
    last_number: false,
};

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
        #[serde(default)]
        extract: ExtractConfig,
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
        }
    }

    /// The term's weight.
    pub fn weight(&self) -> f32 {
        match self {
            RewardSpec::Math { weight, .. }
            | RewardSpec::Format { weight, .. }
            | RewardSpec::Arithmetic { weight, .. }
            | RewardSpec::Countdown { weight, .. }
            | RewardSpec::Language { weight, .. } => *weight,
        }
    }

    /// Whether the term measures correctness (and so defines `correct`).
    pub fn is_accuracy(&self) -> bool {
        matches!(
            self,
            RewardSpec::Math { .. } | RewardSpec::Arithmetic { .. } | RewardSpec::Countdown { .. }
        )
    }

    /// This term alone on one completion.
    pub fn score(&self, completion: &str, reference: &Reference<'_>) -> Option<f32> {
        match self {
            RewardSpec::Math { extract: cfg, .. } => {
                let gold = reference.answer.map(str::trim).filter(|a| !a.is_empty())?;
                let gold = extract(gold, &GOLD_EXTRACT).map_or(gold, |e| e.text);
                let ok = extract(completion, cfg).is_some_and(|p| equivalent(gold, p.text));
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

/// A validated, weighted list of verifiers.
#[derive(Clone, Debug, PartialEq)]
pub struct Reward {
    specs: Vec<RewardSpec>,
    names: Vec<String>,
}

impl Reward {
    /// Validates a list of terms: at least one, finite weights. Terms of the same kind are named
    /// `math`, `math_2`, ….
    pub fn new(specs: Vec<RewardSpec>) -> Result<Reward, Error> {
        if specs.is_empty() {
            return Err(Error::NoTerms);
        }
        let mut names: Vec<String> = Vec::with_capacity(specs.len());
        for (index, spec) in specs.iter().enumerate() {
            if !spec.weight().is_finite() {
                return Err(Error::BadWeight {
                    index,
                    kind: spec.kind(),
                    weight: spec.weight(),
                });
            }
            let seen = specs[..index]
                .iter()
                .filter(|s| s.kind() == spec.kind())
                .count();
            names.push(match seen {
                0 => spec.kind().to_string(),
                n => format!("{}_{}", spec.kind(), n + 1),
            });
        }
        Ok(Reward { specs, names })
    }

    /// Term names, in order, for logging.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The terms, in order.
    pub fn specs(&self) -> &[RewardSpec] {
        &self.specs
    }

    /// Scores one completion.
    pub fn score(&self, completion: &str, reference: &Reference<'_>) -> Scored {
        let components: Vec<Option<f32>> = self
            .specs
            .iter()
            .map(|s| s.score(completion, reference))
            .collect();
        let mut reward = None;
        for (spec, value) in self.specs.iter().zip(&components) {
            if let (Some(v), true) = (value, spec.weight() != 0.0) {
                *reward.get_or_insert(0.0) += spec.weight() * v;
            }
        }
        let correct = self
            .specs
            .iter()
            .position(RewardSpec::is_accuracy)
            .and_then(|i| components[i])
            .map(|v| v >= 1.0);
        Scored {
            reward,
            correct,
            components,
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
}
