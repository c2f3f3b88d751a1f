//! Helpers shared by the CLI integration tests: run the built binary, a fresh scratch directory,
//! and aha-model's committed fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `aha` binary built for these tests.
pub fn aha(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aha"))
        .args(args)
        .output()
        .expect("running the aha binary")
}

/// An empty directory unique to this test process and `tag`.
pub fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("aha-cli-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir
}

/// A checkpoint or file under aha-model's golden fixtures.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures")
        .join(name)
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Runs `aha args`, asserts it succeeded, and returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = aha(args);
    assert!(
        out.status.success(),
        "aha {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 stdout")
}

/// The JSON values of a JSONL file, one per line.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("reading a JSONL file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Writes `lines` to `path` as JSONL.
pub fn write_lines(path: &Path, lines: impl IntoIterator<Item = impl std::fmt::Display>) {
    let text: String = lines.into_iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(path, text).expect("writing a JSONL file");
}
