//! The interface every external reward shares: judge a batch of completions at once.
//!
//! Built-in verifiers are pure functions of one completion; rewards that live outside aha (a
//! user's program, an HTTP server, a sandboxed code runner) pay a fixed cost per call, so the
//! trainer hands them a whole batch — all B·G completions of a step — through [`BatchReward`].
//! Each input carries the dataset row it came from, so a reward can read any field (`answer`,
//! `tests`, `numbers`, …) without aha knowing what it means. An implementation returns one
//! [`Judgement`] per input, in input order, or an error that stops training; it never drops or
//! reorders inputs. How the terms are weighted and combined is `compose.rs`'s job.

use serde_json::{Map, Value};

use crate::Error;

/// One completion to judge, with the row of the dataset its prompt came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RewardInput<'a> {
    /// The input's position in its batch (0-based); what a reward program echoes back.
    pub id: usize,
    /// The problem as the dataset gives it (before the prompt template is applied).
    pub prompt: &'a str,
    pub completion: &'a str,
    /// Every other field of the dataset row (answer, tests, numbers, …) as JSON.
    pub row: &'a Map<String, Value>,
}

/// One external verdict. `reward: None` means "cannot judge": excluded, never counted as 0.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Judgement {
    pub reward: Option<f32>,
    /// Whether the completion is right, when the reward knows (it then counts for accuracy).
    pub correct: Option<bool>,
}

/// A reward that judges a batch of completions in one call.
///
/// `score_batch` must return exactly `inputs.len()` judgements, aligned with `inputs`. It may be
/// called from any thread, and concurrently with the built-in verifiers, but not concurrently
/// with itself by aha (implementations may still serialise internally).
pub trait BatchReward: Send + Sync {
    fn score_batch(&self, inputs: &[RewardInput<'_>]) -> Result<Vec<Judgement>, Error>;

    /// A line for the log about the work done so far (e.g. executions per second), if any.
    fn report(&self) -> Option<String> {
        None
    }
}

/// The JSON object a reward program or server receives for one input: the row's fields, then
/// `prompt` and `completion` (which override row fields of the same name), and `id` if asked.
pub fn input_object(input: &RewardInput<'_>, with_id: bool) -> Map<String, Value> {
    let mut object = input.row.clone();
    object.insert("prompt".into(), Value::String(input.prompt.into()));
    object.insert("completion".into(), Value::String(input.completion.into()));
    if with_id {
        object.insert("id".into(), Value::from(input.id));
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_object_keeps_row_fields_and_overrides_reserved_ones() {
        let row: Map<String, Value> =
            serde_json::from_str(r#"{"answer": "4", "id": "row-7", "prompt": "stale"}"#).unwrap();
        let input = RewardInput {
            id: 3,
            prompt: "2+2?",
            completion: "<answer>4</answer>",
            row: &row,
        };
        let o = Value::Object(input_object(&input, true));
        assert_eq!(o["answer"], "4");
        assert_eq!(o["id"], 3);
        assert_eq!(o["prompt"], "2+2?");
        assert_eq!(o["completion"], "<answer>4</answer>");
        let o = input_object(&input, false);
        assert_eq!(o["id"], "row-7", "without an id the row's own id stays");
    }
}
