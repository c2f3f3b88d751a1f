//! Helpers shared by the golden and bad-input tests: fixture paths, reference files, scratch
//! directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// The four transformers-made checkpoints (see fixtures/make_fixtures.py).
pub const CHECKPOINTS: [&str; 4] = [
    "qwen2_tied_f32",
    "llama_bf16_sharded",
    "qwen3_qknorm_f32",
    "qwen2_mha_t4config",
];

#[derive(Debug, serde::Deserialize)]
pub struct Reference {
    pub sequences: Vec<ScoredSequence>,
    pub greedy: Vec<Greedy>,
}

#[derive(Debug, serde::Deserialize)]
pub struct ScoredSequence {
    pub ids: Vec<u32>,
    pub logprobs: Vec<f32>,
}

#[derive(Debug, serde::Deserialize)]
pub struct Greedy {
    pub prompt_ids: Vec<u32>,
    pub output_ids: Vec<u32>,
}

pub fn reference(name: &str) -> Reference {
    let path = fixture(name).join("reference.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A directory under the system temp dir, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "aha-model-test-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A copy of fixture `name` to break in a test.
    pub fn copy_of(name: &str) -> Self {
        let s = Self::new(name);
        for entry in std::fs::read_dir(fixture(name)).unwrap() {
            let p = entry.unwrap().path();
            std::fs::copy(&p, s.0.join(p.file_name().unwrap())).unwrap();
        }
        s
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
