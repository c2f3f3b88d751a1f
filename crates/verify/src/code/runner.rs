//! Judging programs against test cases: the row's `tests`, the output comparison, the options,
//! and running a batch's executions in parallel sandbox slots.
//!
//! A test passes when the program exits with status 0 within its limits and its stdout equals
//! the expected output up to whitespace: both are trimmed, compared line by line with trailing
//! whitespace (and `\r`) ignored. A completion without a closed python block fails every test.
//! With `partial = false` (the default) a completion's remaining tests are skipped after its
//! first failure, since its reward is already 0.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::program::extract_program;
use super::sandbox::{Limits, Sandbox, MAX_PROGRAM_BYTES};
use super::SandboxError;

/// One test case: the program's standard input and its expected standard output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCase {
    pub input: String,
    pub output: String,
}

/// Reads a row's `tests` field: a non-empty list of `{"input": str, "output": str}`. The error
/// names the offending element and field (the caller adds the file and line).
pub fn parse_tests(value: Option<&serde_json::Value>) -> Result<Vec<TestCase>, String> {
    let list = match value {
        None | Some(serde_json::Value::Null) => return Err("missing field \"tests\"".into()),
        Some(serde_json::Value::Array(list)) if !list.is_empty() => list,
        Some(other) => {
            return Err(format!(
                "\"tests\" must be a non-empty list of {{\"input\", \"output\"}} objects, got {}",
                preview(other)
            ))
        }
    };
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let field = |name: &str| match t.get(name) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(format!(
                    "\"tests\"[{i}].{name} must be a string, got {}",
                    preview(other)
                )),
                None => Err(format!("\"tests\"[{i}] has no field \"{name}\"")),
            };
            Ok(TestCase {
                input: field("input")?,
                output: field("output")?,
            })
        })
        .collect()
}

fn preview(v: &serde_json::Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

/// Whether `actual` matches `expected`: trimmed, then line by line without trailing whitespace.
pub fn outputs_match(actual: &str, expected: &str) -> bool {
    actual
        .trim()
        .lines()
        .map(str::trim_end)
        .eq(expected.trim().lines().map(str::trim_end))
}

fn default_timeout() -> f64 {
    10.0
}
fn default_memory() -> u64 {
    512
}
fn default_processes() -> u64 {
    32
}
fn default_output() -> u64 {
    1024
}
fn default_disk() -> u64 {
    16
}
fn default_python() -> String {
    "python3".into()
}
fn default_uid_base() -> u32 {
    2_000_000_000
}

/// The code reward's options, as written in a `[[reward]] kind = "code"` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeConfig {
    /// The term's weight in a `[[reward]]` list (required there, like every term's; 1 by
    /// default in code). The runner itself does not use it.
    pub weight: f32,
    /// Reward the passed fraction of tests instead of 1 only when all pass.
    #[serde(default)]
    pub partial: bool,
    /// Wall-clock seconds per execution (one test).
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    /// CPU seconds per process; default: `timeout_s` rounded up.
    #[serde(default)]
    pub cpu_s: Option<u64>,
    /// Address space per process, MiB.
    #[serde(default = "default_memory")]
    pub memory_mb: u64,
    /// Processes per execution, bwrap's two included.
    #[serde(default = "default_processes")]
    pub processes: u64,
    /// stdout + stderr read per execution before it is killed, KiB.
    #[serde(default = "default_output")]
    pub output_kb: u64,
    /// Largest file and size of the private `/tmp`, MiB.
    #[serde(default = "default_disk")]
    pub disk_mb: u64,
    /// Executions at once; default: the number of cores.
    #[serde(default)]
    pub parallel: Option<usize>,
    /// The interpreter, looked up in the sandbox's `/usr/bin:/bin`.
    #[serde(default = "default_python")]
    pub python: String,
    /// Slots run as the first free host uids at or above this one (claimed with a lock file
    /// under /run/lock/aha-sandbox; a uid some process runs as is skipped).
    #[serde(default = "default_uid_base")]
    pub uid_base: u32,
}

impl Default for CodeConfig {
    fn default() -> Self {
        CodeConfig {
            weight: 1.0,
            partial: false,
            timeout_s: default_timeout(),
            cpu_s: None,
            memory_mb: default_memory(),
            processes: default_processes(),
            output_kb: default_output(),
            disk_mb: default_disk(),
            parallel: None,
            python: default_python(),
            uid_base: default_uid_base(),
        }
    }
}

impl CodeConfig {
    /// Checks the ranges and turns the options into sandbox limits.
    pub fn limits(&self) -> Result<Limits, SandboxError> {
        let bad = |m: String| Err(SandboxError::Config(m));
        if !(self.timeout_s.is_finite() && self.timeout_s > 0.0 && self.timeout_s <= 3600.0) {
            return bad(format!(
                "timeout_s = {} must be in (0, 3600]",
                self.timeout_s
            ));
        }
        if self.memory_mb < 64 {
            return bad(format!(
                "memory_mb = {} is below python's 64",
                self.memory_mb
            ));
        }
        // setpriv, bwrap's monitor and its PID 1 come before the program.
        if self.processes < 4 {
            return bad(format!("processes = {} must be at least 4", self.processes));
        }
        if self.output_kb == 0 || self.disk_mb == 0 || self.parallel == Some(0) {
            return bad("output_kb, disk_mb and parallel must be at least 1".into());
        }
        Ok(Limits {
            wall: Duration::from_secs_f64(self.timeout_s),
            cpu_s: self.cpu_s.unwrap_or(self.timeout_s.ceil() as u64).max(1),
            memory_mb: self.memory_mb,
            processes: self.processes,
            output_bytes: usize::try_from(self.output_kb.saturating_mul(1024))
                .unwrap_or(usize::MAX),
            disk_mb: self.disk_mb,
        })
    }

    /// The number of parallel executions.
    pub fn parallelism(&self) -> usize {
        self.parallel.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

/// A completion and the tests it must pass.
#[derive(Clone, Copy, Debug)]
pub struct Problem<'a> {
    pub completion: &'a str,
    pub tests: &'a [TestCase],
}

/// The verdict on one completion.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CodeVerdict {
    /// 1/0, or the passed fraction with `partial`.
    pub reward: f32,
    /// Every test passed.
    pub correct: bool,
    /// Tests passed (with `partial = false`, tests after the first failure are not run).
    pub passed: usize,
    pub tests: usize,
    /// A closed python block was found.
    pub has_program: bool,
}

/// Executions run and the time they took, for throughput.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunStats {
    pub executions: usize,
    pub elapsed: Duration,
}

impl RunStats {
    pub fn per_second(&self) -> f64 {
        self.executions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn add(&mut self, other: RunStats) {
        self.executions += other.executions;
        self.elapsed += other.elapsed;
    }
}

/// Runs completions' programs against their tests in a sandbox, `parallel` at a time.
#[derive(Debug)]
pub struct CodeRunner {
    config: CodeConfig,
    sandbox: Sandbox,
    parallel: usize,
    /// Slots are uids: two batches at once would share them (and sweep each other's runs).
    busy: Mutex<RunStats>,
}

impl CodeRunner {
    /// Validates the options and checks that the sandbox works here (see [`Sandbox::new`]).
    pub fn new(config: CodeConfig) -> Result<CodeRunner, SandboxError> {
        let limits = config.limits()?;
        let parallel = config.parallelism();
        let slots = u32::try_from(parallel)
            .map_err(|_| SandboxError::Config(format!("parallel = {parallel} is too large")))?;
        let sandbox = Sandbox::new(limits, &config.python, config.uid_base, slots)?;
        Ok(CodeRunner {
            config,
            sandbox,
            parallel,
            busy: Mutex::new(RunStats::default()),
        })
    }

    pub fn config(&self) -> &CodeConfig {
        &self.config
    }

    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Executions and their wall time over this runner's life.
    pub fn total(&self) -> RunStats {
        *self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Judges every problem; returns the verdicts in order and this batch's throughput.
    pub fn judge(
        &self,
        problems: &[Problem<'_>],
    ) -> Result<(Vec<CodeVerdict>, RunStats), SandboxError> {
        let mut total = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let start = Instant::now();
        let programs: Vec<Option<&str>> = problems
            .iter()
            .map(|p| extract_program(p.completion).filter(|s| runnable(s)))
            .collect();
        let jobs: Vec<(usize, usize)> = problems
            .iter()
            .enumerate()
            .filter(|(i, _)| programs[*i].is_some())
            .flat_map(|(i, p)| (0..p.tests.len()).map(move |t| (i, t)))
            .collect();
        let passed: Vec<AtomicUsize> = problems.iter().map(|_| AtomicUsize::new(0)).collect();
        let failed: Vec<AtomicBool> = problems.iter().map(|_| AtomicBool::new(false)).collect();
        let next = AtomicUsize::new(0);
        let executions = AtomicUsize::new(0);
        let workers = self.parallel.min(jobs.len());
        let worker = |slot: usize| -> Result<(), SandboxError> {
            while let Some(&(i, t)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                if !self.config.partial && failed[i].load(Ordering::Relaxed) {
                    continue;
                }
                let (Some(program), test) = (programs[i], &problems[i].tests[t]) else {
                    continue;
                };
                let run = self.sandbox.run(slot, program, test.input.as_bytes())?;
                executions.fetch_add(1, Ordering::Relaxed);
                if run.success()
                    && outputs_match(&String::from_utf8_lossy(&run.stdout), &test.output)
                {
                    passed[i].fetch_add(1, Ordering::Relaxed);
                } else {
                    failed[i].store(true, Ordering::Relaxed);
                }
            }
            Ok(())
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|slot| s.spawn(move || worker(slot)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect::<Result<Vec<()>, SandboxError>>()
        })?;
        let verdicts = problems
            .iter()
            .zip(&passed)
            .zip(&programs)
            .map(|((p, n), program)| {
                let n = n.load(Ordering::Relaxed);
                let correct = program.is_some() && n == p.tests.len();
                let reward = match (self.config.partial, correct) {
                    (true, _) => n as f32 / p.tests.len().max(1) as f32,
                    (false, true) => 1.0,
                    (false, false) => 0.0,
                };
                CodeVerdict {
                    reward,
                    correct,
                    passed: n,
                    tests: p.tests.len(),
                    has_program: program.is_some(),
                }
            })
            .collect();
        let stats = RunStats {
            executions: executions.into_inner(),
            elapsed: start.elapsed(),
        };
        total.add(stats);
        Ok((verdicts, stats))
    }
}

/// Programs that cannot be passed to the interpreter fail without running.
fn runnable(program: &str) -> bool {
    program.len() <= MAX_PROGRAM_BYTES && !program.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_comparison() {
        assert!(outputs_match("3\n", "3"));
        assert!(outputs_match("\n1 2  \r\n3\n\n\n", "1 2\n3"));
        assert!(!outputs_match("1  2\n", "1 2"));
        assert!(!outputs_match("1\n\n2", "1\n2"));
        assert!(!outputs_match("", "0"));
        assert!(outputs_match("  ", ""));
    }

    #[test]
    fn tests_field_errors_name_the_field() {
        let v: serde_json::Value = serde_json::json!([{"input": "1\n", "output": "2"}]);
        assert_eq!(parse_tests(Some(&v)).unwrap()[0].output, "2");
        assert_eq!(parse_tests(None).unwrap_err(), "missing field \"tests\"");
        let empty = serde_json::json!([]);
        assert!(parse_tests(Some(&empty)).unwrap_err().contains("non-empty"));
        let bad = serde_json::json!([{"input": "1"}, {"input": "", "output": 2}]);
        assert_eq!(
            parse_tests(Some(&bad)).unwrap_err(),
            "\"tests\"[0] has no field \"output\""
        );
        let bad = serde_json::json!([{"input": "", "output": 2}]);
        assert_eq!(
            parse_tests(Some(&bad)).unwrap_err(),
            "\"tests\"[0].output must be a string, got 2"
        );
    }

    #[test]
    fn config_defaults_and_ranges() {
        let c: CodeConfig = serde_json::from_str(r#"{"weight": 1}"#).unwrap();
        assert_eq!(c, CodeConfig::default());
        assert!(
            serde_json::from_str::<CodeConfig>("{}").is_err(),
            "weight is required"
        );
        let l = c.limits().unwrap();
        assert_eq!((l.wall, l.cpu_s), (Duration::from_secs(10), 10));
        assert!(serde_json::from_str::<CodeConfig>(r#"{"weight": 1, "timeout": 1}"#).is_err());
        for bad in [
            r#"{"weight": 1, "timeout_s": 0}"#,
            r#"{"weight": 1, "memory_mb": 8}"#,
            r#"{"weight": 1, "processes": 1}"#,
            r#"{"weight": 1, "parallel": 0}"#,
        ] {
            let c: CodeConfig = serde_json::from_str(bad).unwrap();
            assert!(c.limits().is_err(), "{bad}");
        }
    }
}
