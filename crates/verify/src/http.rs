//! A reward server spoken to over HTTP (`kind = "http"`).
//!
//! For a batch aha POSTs `{"items": [{<row fields>, "prompt": …, "completion": …}, …]}` (JSON)
//! to the URL and expects `200` with `{"rewards": [float|null, …]}`, one per item, in order;
//! `null` means "cannot judge". A connection that fails, a timeout, or a 5xx status is retried
//! `retries` times with exponential backoff (`backoff_s`, then twice that, …), since a server
//! that is restarting or overloaded usually recovers; a 4xx status or a body that is not such
//! an object is not retried (sending the same batch again would get the same answer). Errors
//! name the URL, the HTTP status and an excerpt of the body. The client is `ureq` (blocking,
//! plain HTTP; no TLS is built in).
//!
//! What overlaps: [`crate::Reward::score_batch`] runs the request on its own thread beside the
//! built-in verifiers and any other external term; within a GRPO step nothing else can (the
//! update needs the rewards).

use std::time::Duration;

use serde_json::Value;

use crate::batch::{input_object, BatchReward, Judgement, RewardInput};
use crate::Error;

/// Characters of a response body quoted in an error.
const BODY_EXCERPT: usize = 300;

/// A reward server's client.
pub struct HttpReward {
    url: String,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    agent: ureq::Agent,
}

/// Why one attempt failed, and whether another attempt may help.
struct Attempt {
    message: String,
    retry: bool,
}

impl HttpReward {
    /// A client for `url` (`http://…`); `timeout` bounds each attempt as a whole.
    pub fn new(url: &str, timeout: Duration, retries: u32, backoff: Duration) -> HttpReward {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // Statuses are read and reported here, with the body.
            .http_status_as_error(false)
            .build();
        HttpReward {
            url: url.to_string(),
            timeout,
            retries,
            backoff,
            agent: ureq::Agent::new_with_config(config),
        }
    }

    fn attempt(&self, body: &str, n: usize) -> Result<Vec<Judgement>, Attempt> {
        let mut response = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(|e| self.failed(e, "sending the batch"))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.failed(e, &format!("HTTP {status}, reading the body")))?;
        if status != 200 {
            return Err(Attempt {
                retry: status >= 500,
                message: format!("HTTP {status}: {}", excerpt(&text)),
            });
        }
        parse_rewards(&text, n).map_err(|why| Attempt {
            retry: false,
            message: format!("HTTP 200 but {why}: {}", excerpt(&text)),
        })
    }
}

impl HttpReward {
    fn failed(&self, e: ureq::Error, doing: &str) -> Attempt {
        let message = match &e {
            ureq::Error::Timeout(_) => format!("{doing}: no reply within {:?}", self.timeout),
            e => format!("{doing}: {e}"),
        };
        Attempt {
            retry: transient(&e),
            message,
        }
    }
}

impl BatchReward for HttpReward {
    fn score_batch(&self, inputs: &[RewardInput<'_>]) -> Result<Vec<Judgement>, Error> {
        let items: Vec<Value> = inputs
            .iter()
            .map(|i| Value::Object(input_object(i, false)))
            .collect();
        let body = serde_json::json!({ "items": items }).to_string();
        let mut wait = self.backoff;
        let mut tries = 0;
        loop {
            tries += 1;
            match self.attempt(&body, inputs.len()) {
                Ok(judgements) => return Ok(judgements),
                Err(a) if a.retry && tries <= self.retries => {
                    std::thread::sleep(wait);
                    wait = wait.saturating_mul(2);
                }
                Err(a) => {
                    return Err(Error::Http {
                        url: self.url.clone(),
                        message: format!(
                            "{} (a batch of {}, {tries} attempt{})",
                            a.message,
                            inputs.len(),
                            if tries == 1 { "" } else { "s" }
                        ),
                    })
                }
            }
        }
    }
}

/// Whether a transport error may pass on its own: a refused or dropped connection, a timeout.
fn transient(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
    )
}

/// `{"rewards": [float|null, …]}` with `n` entries.
fn parse_rewards(text: &str, n: usize) -> Result<Vec<Judgement>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    let Some(Value::Array(rewards)) = value.get("rewards") else {
        return Err("no \"rewards\" array".into());
    };
    if rewards.len() != n {
        return Err(format!("{} rewards for {n} items", rewards.len()));
    }
    rewards
        .iter()
        .enumerate()
        .map(|(i, r)| match r {
            Value::Null => Ok(Judgement::default()),
            v => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(|x| Judgement {
                    reward: Some(x as f32),
                    correct: None,
                })
                .ok_or_else(|| format!("rewards[{i}] = {v} is not a number or null")),
        })
        .collect()
}

fn excerpt(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(BODY_EXCERPT) {
        Some((at, _)) => format!("{}…", &body[..at]),
        None if body.is_empty() => "(empty body)".into(),
        None => body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reward_lists() {
        let j = parse_rewards(r#"{"rewards": [1, null, 0.25]}"#, 3).unwrap();
        let got: Vec<Option<f32>> = j.iter().map(|j| j.reward).collect();
        assert_eq!(got, [Some(1.0), None, Some(0.25)]);
        for (body, why) in [
            ("[1]", "no \"rewards\" array"),
            (r#"{"rewards": [1]}"#, "1 rewards for 3 items"),
            (
                r#"{"rewards": [1, "a", 2]}"#,
                "rewards[1] = \"a\" is not a number",
            ),
            ("<html>", "not JSON"),
        ] {
            let err = parse_rewards(body, 3).unwrap_err();
            assert!(err.contains(why), "{body}: {err}");
        }
        assert_eq!(excerpt(" "), "(empty body)");
    }
}
