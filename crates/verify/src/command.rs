//! A user's own reward program, spoken to in JSON lines over stdio (`kind = "command"`).
//!
//! aha starts the program once, when the reward is built, and keeps it for the run. For a batch
//! it writes one line per completion to the program's stdin,
//! `{"id": n, "prompt": …, "completion": …, <every other field of the dataset row>}`, and reads
//! one line per input from its stdout, `{"id": n, "reward": float|null}` (optionally with
//! `"correct": bool`), in any order, matched by `id` (0-based within the batch). `null` means
//! "cannot judge". Blank output lines are skipped; anything else that is not such an object, an
//! unknown or repeated id, the program exiting, or no complete answer within the timeout is an
//! error that names the command, its exit status and the last lines of its stderr. After an
//! error the program is killed and every later batch fails with the same error: a run stops,
//! it does not carry on with a half-dead reward.
//!
//! What overlaps: a thread writes the batch to stdin while the caller reads answers as they
//! come, so the program judges the first completion while later ones are still being written
//! (and a program that answers as it reads never deadlocks on a full pipe); threads drain
//! stdout and stderr continuously. [`crate::Reward::score_batch`] runs this term on its own
//! thread beside the built-in verifiers and other external terms. What does not: a GRPO step
//! needs its rewards before its update and the next step's rollouts need that update, so the
//! program's time within a step adds to the step (evaluation and rejection sampling hide it
//! behind the next batch's generation instead; see `aha_train::eval`).
//!
//! The program runs in its own process group, so a Ctrl-C meant for aha (which stops training
//! at a step boundary) does not kill it mid-step; it is killed when the reward is dropped.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::batch::{input_object, BatchReward, Judgement, RewardInput};
use crate::Error;

/// Lines of the program's stderr kept for error messages.
const STDERR_LINES: usize = 20;
/// Characters kept of one stderr or stdout line in a message.
const LINE_CHARS: usize = 400;
/// How long to wait for an exited program's status and last stderr lines.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// A running reward program.
pub struct CommandReward {
    /// The command as the user wrote it, for messages.
    display: String,
    timeout: Duration,
    session: Mutex<Session>,
}

struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Lines of stdout, read by a thread; disconnected at end of file.
    stdout: Receiver<std::io::Result<String>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    stderr_reader: Option<JoinHandle<()>>,
    /// The first error, repeated by every later call.
    failed: Option<String>,
}

impl CommandReward {
    /// Starts `command` (program and arguments); `timeout` bounds each batch.
    pub fn start(command: &[String], timeout: Duration) -> Result<CommandReward, Error> {
        let display = command.join(" ");
        let error = |message: String| Error::Command {
            command: display.clone(),
            message,
        };
        let (program, args) = command
            .split_first()
            .ok_or_else(|| error("is empty".into()))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| error(format!("cannot be started: {e}")))?;
        let (stdin, stdout, stderr) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(i), Some(o), Some(e)) => (i, o, e),
                // All three were asked for as pipes just above.
                _ => return Err(error("started without its stdio pipes".into())),
            };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let end = line.is_err();
                if tx.send(line).is_err() || end {
                    return;
                }
            }
        });
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_LINES)));
        let sink = Arc::clone(&tail);
        let stderr_reader = std::thread::spawn(move || keep_tail(stderr, &sink));
        Ok(CommandReward {
            display,
            timeout,
            session: Mutex::new(Session {
                child,
                stdin: Some(stdin),
                stdout: rx,
                stderr: tail,
                stderr_reader: Some(stderr_reader),
                failed: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Session> {
        // A panic while holding the lock leaves a session whose state is unknown; the next call
        // still sees `failed` or a dead child and reports it, so the poison carries no news.
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn error(&self, message: String) -> Error {
        Error::Command {
            command: self.display.clone(),
            message,
        }
    }
}

impl BatchReward for CommandReward {
    fn score_batch(&self, inputs: &[RewardInput<'_>]) -> Result<Vec<Judgement>, Error> {
        let mut session = self.lock();
        if let Some(message) = &session.failed {
            return Err(self.error(message.clone()));
        }
        match session.exchange(inputs, self.timeout) {
            Ok(judgements) => Ok(judgements),
            Err(failure) => {
                let message = session.fail(failure, inputs.len());
                Err(self.error(message))
            }
        }
    }
}

impl Drop for CommandReward {
    fn drop(&mut self) {
        let session = self.session.get_mut().unwrap_or_else(|p| p.into_inner());
        // Closing stdin first lets a well-behaved program see the end of its input.
        session.stdin.take();
        let _ = session.child.kill();
        let _ = session.child.wait();
    }
}

/// Why a batch failed, before the stderr tail and exit status are added.
enum Failure {
    /// The program closed its stdout (usually: it exited) after `answered` lines.
    Exited {
        answered: usize,
        status: Option<std::process::ExitStatus>,
    },
    TimedOut {
        answered: usize,
    },
    /// A line that breaks the protocol.
    BadLine {
        line: String,
        why: String,
    },
    Io(String),
}

impl Session {
    /// Writes the batch (on a thread) and collects one judgement per input.
    fn exchange(
        &mut self,
        inputs: &[RewardInput<'_>],
        timeout: Duration,
    ) -> Result<Vec<Judgement>, Failure> {
        let deadline = Instant::now() + timeout;
        let mut payload = Vec::new();
        for input in inputs {
            serde_json::to_writer(&mut payload, &Value::Object(input_object(input, true)))
                .map_err(|e| Failure::Io(format!("cannot encode input {}: {e}", input.id)))?;
            payload.push(b'\n');
        }
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(Failure::Io("its stdin is closed".into()));
        };
        let stdout = &self.stdout;
        let child = &mut self.child;
        std::thread::scope(|scope| {
            let writer =
                scope.spawn(move || stdin.write_all(&payload).and_then(|()| stdin.flush()));
            let mut read = read_answers(stdout, inputs.len(), deadline);
            if let Err(failure) = &mut read {
                // It closed stdout: give it a moment to exit on its own and say how it did.
                if let Failure::Exited { status, .. } = failure {
                    *status = wait_exit(child, EXIT_GRACE);
                }
                // Unblocks a writer stuck on a full pipe, so the scope can end.
                let _ = child.kill();
            }
            let written = writer.join();
            let judgements = read?;
            match written {
                Ok(Ok(())) => Ok(judgements),
                Ok(Err(e)) => Err(Failure::Io(format!("writing to its stdin: {e}"))),
                Err(_) => Err(Failure::Io("the stdin writer panicked".into())),
            }
        })
    }

    /// Kills the program, records the error for later calls and returns its message.
    fn fail(&mut self, failure: Failure, batch: usize) -> String {
        let status = match failure {
            Failure::Exited { status, .. } => status,
            _ => None,
        };
        let _ = self.child.kill();
        let status = status.or_else(|| self.child.wait().ok());
        self.stdin.take();
        // Its last stderr lines arrive once it has gone.
        if let Some(reader) = self.stderr_reader.take() {
            let until = Instant::now() + EXIT_GRACE;
            while !reader.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let status = status.map_or("status unknown".into(), |s| s.to_string());
        let what = match failure {
            Failure::Exited { answered, .. } => format!(
                "exited ({status}) after answering {answered} of the {batch} inputs of a batch"
            ),
            Failure::TimedOut { answered } => format!(
                "timed out: answered {answered} of the {batch} inputs of a batch in time; \
                 killed ({status})"
            ),
            Failure::BadLine { line, why } => format!(
                "printed a line that is not {{\"id\": n, \"reward\": number|null}} ({why}): \
                 {}; killed ({status})",
                clip(&line)
            ),
            Failure::Io(e) => format!("{e}; killed ({status})"),
        };
        let tail = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        let message = match tail.is_empty() {
            true => format!("{what}; its stderr was empty"),
            false => {
                let lines: Vec<&str> = tail.iter().map(String::as_str).collect();
                format!(
                    "{what}; last lines of its stderr:\n  {}",
                    lines.join("\n  ")
                )
            }
        };
        self.failed = Some(message.clone());
        message
    }
}

/// Reads `n` answer lines, matching them to inputs by id, until `deadline`.
fn read_answers(
    stdout: &Receiver<std::io::Result<String>>,
    n: usize,
    deadline: Instant,
) -> Result<Vec<Judgement>, Failure> {
    let mut judgements: Vec<Option<Judgement>> = vec![None; n];
    let mut answered = 0;
    while answered < n {
        let wait = deadline.saturating_duration_since(Instant::now());
        let line = match stdout.recv_timeout(wait) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(Failure::Io(format!("reading its stdout: {e}"))),
            Err(RecvTimeoutError::Timeout) => return Err(Failure::TimedOut { answered }),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Failure::Exited {
                    answered,
                    status: None,
                })
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| Failure::BadLine {
            line: line.clone(),
            why,
        };
        let (id, judgement) = parse_answer(&line).map_err(bad)?;
        match judgements.get_mut(id) {
            None => return Err(bad(format!("id {id} is not in this batch of {n} (0..{n})"))),
            Some(Some(_)) => return Err(bad(format!("id {id} answered twice"))),
            Some(slot) => *slot = Some(judgement),
        }
        answered += 1;
    }
    Ok(judgements.into_iter().flatten().collect())
}

/// One answer line: `{"id": n, "reward": number|null, "correct"?: bool|null}`.
fn parse_answer(line: &str) -> Result<(usize, Judgement), String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(o) = value else {
        return Err("not a JSON object".into());
    };
    let id = match o.get("id") {
        Some(v) => v
            .as_u64()
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(|| format!("\"id\" must be a non-negative integer, got {v}"))?,
        None => return Err("no \"id\"".into()),
    };
    let reward = match o.get("reward") {
        Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("\"reward\" must be a number or null, got {v}"))?
                as f32,
        ),
        None => return Err("no \"reward\"".into()),
    };
    let correct = match o.get("correct") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(v) => return Err(format!("\"correct\" must be true, false or null, got {v}")),
    };
    Ok((id, Judgement { reward, correct }))
}

/// Keeps the last [`STDERR_LINES`] lines of `stderr` in `tail` until end of file.
fn keep_tail(stderr: impl Read, tail: &Mutex<VecDeque<String>>) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                if tail.len() == STDERR_LINES {
                    tail.pop_front();
                }
                tail.push_back(clip(line.trim_end()));
            }
        }
    }
}

/// Polls for the child's exit for up to `grace`.
fn wait_exit(child: &mut Child, grace: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}

fn clip(line: &str) -> String {
    match line.char_indices().nth(LINE_CHARS) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_lines() {
        assert_eq!(
            parse_answer(r#"{"id": 2, "reward": 0.5}"#),
            Ok((
                2,
                Judgement {
                    reward: Some(0.5),
                    correct: None
                }
            ))
        );
        assert_eq!(
            parse_answer(r#"{"id": 0, "reward": null, "correct": false, "note": "x"}"#),
            Ok((
                0,
                Judgement {
                    reward: None,
                    correct: Some(false)
                }
            ))
        );
        for (line, why) in [
            ("0.5", "not a JSON object"),
            ("{\"reward\": 1}", "no \"id\""),
            ("{\"id\": -1, \"reward\": 1}", "non-negative integer"),
            ("{\"id\": 1}", "no \"reward\""),
            ("{\"id\": 1, \"reward\": \"1\"}", "number or null"),
            ("{\"id\": 1, \"reward\": NaN}", "not JSON"),
            (
                "{\"id\": 1, \"reward\": 1, \"correct\": 1}",
                "true, false or null",
            ),
        ] {
            let err = parse_answer(line).unwrap_err();
            assert!(err.contains(why), "{line}: {err}");
        }
        assert_eq!(
            clip(&"é".repeat(LINE_CHARS + 5)).chars().count(),
            LINE_CHARS + 1
        );
    }
}
