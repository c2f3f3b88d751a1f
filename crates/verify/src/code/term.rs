//! The code reward as an external `[[reward]]` term: [`CodeTerm`] judges a batch through the
//! [`BatchReward`] interface, reading each input's `tests` from its dataset row.
//!
//! The sandbox is checked and its uids claimed on the first batch, not when the term is built,
//! so that building a task's reward stays infallible; a host that cannot run it fails that first
//! batch with the sandbox's error. A row without valid `tests` is an error, never a silent 0.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::batch::{BatchReward, Judgement, RewardInput};
use crate::Error;

use super::{parse_tests, CodeConfig, CodeRunner, Problem, TestCase};

/// A `kind = "code"` term: its options, and its runner once started.
#[derive(Debug)]
pub struct CodeTerm {
    config: CodeConfig,
    runner: Mutex<Option<Arc<CodeRunner>>>,
}

impl CodeTerm {
    pub fn new(config: CodeConfig) -> CodeTerm {
        CodeTerm {
            config,
            runner: Mutex::new(None),
        }
    }

    /// The runner, started on first use.
    pub fn runner(&self) -> Result<Arc<CodeRunner>, Error> {
        let mut slot = self.runner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = slot.as_ref() {
            return Ok(Arc::clone(r));
        }
        let runner = Arc::new(CodeRunner::new(self.config.clone())?);
        *slot = Some(Arc::clone(&runner));
        Ok(runner)
    }
}

impl BatchReward for CodeTerm {
    fn score_batch(&self, inputs: &[RewardInput<'_>]) -> Result<Vec<Judgement>, Error> {
        let runner = self.runner()?;
        // A group's G completions share one row: read its tests once.
        let mut seen: HashMap<*const Map<String, Value>, usize> = HashMap::new();
        let mut tests: Vec<Vec<TestCase>> = Vec::new();
        let mut which = Vec::with_capacity(inputs.len());
        for input in inputs {
            let key: *const Map<String, Value> = input.row;
            let index = match seen.get(&key) {
                Some(&i) => i,
                None => {
                    let t = parse_tests(input.row.get("tests")).map_err(|m| {
                        Error::Batch(format!("code reward, input {}: {m}", input.id))
                    })?;
                    tests.push(t);
                    seen.insert(key, tests.len() - 1);
                    tests.len() - 1
                }
            };
            which.push(index);
        }
        let problems: Vec<Problem<'_>> = inputs
            .iter()
            .zip(&which)
            .map(|(input, &i)| Problem {
                completion: input.completion,
                tests: &tests[i],
            })
            .collect();
        let (verdicts, _) = runner.judge(&problems)?;
        Ok(verdicts
            .iter()
            .map(|v| Judgement {
                reward: Some(v.reward),
                correct: Some(v.correct),
            })
            .collect())
    }

    fn report(&self) -> Option<String> {
        let slot = self.runner.lock().unwrap_or_else(|e| e.into_inner());
        let total = slot.as_ref()?.total();
        Some(format!(
            "code: {} executions in {:.1} s, {:.1} executions/s",
            total.executions,
            total.elapsed.as_secs_f64(),
            total.per_second()
        ))
    }
}
