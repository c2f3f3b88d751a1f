//! Helpers shared by aha-verify's integration tests.

use serde::de::DeserializeOwned;

/// The cases of a JSONL fixture, one per line; a bad line panics with its line number.
pub fn jsonl_cases<T: DeserializeOwned>(text: &str) -> Vec<T> {
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("fixture line {}: {e}", i + 1))
        })
        .collect()
}
