//! The run layout of `aha train` and `aha sft`, through the binary: resume (exact, and refused
//! when it would lose or mix work), checkpoint retention and cleanup, a graceful stop on
//! SIGINT/SIGTERM (a second signal stops at once), generation_config.json kept, per-step lines
//! on a pipe, TensorBoard events, and where relative paths start.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{aha, scratch};

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sft_smoke() -> String {
    s(&repo().join("configs/sft_smoke.toml"))
}

fn smoke() -> String {
    s(&repo().join("configs/smoke.toml"))
}

/// `aha COMMAND CONFIG --run-dir RUN` and then `rest`.
fn in_run<'a>(command: &'a str, config: &'a str, run: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    [&[command, config, "--run-dir", run][..], rest].concat()
}

fn ok(args: &[&str]) -> Output {
    let out = aha(args);
    assert!(
        out.status.success(),
        "aha {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn fails(args: &[&str]) -> String {
    let out = aha(args);
    assert_eq!(out.status.code(), Some(1), "aha {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// metrics.jsonl without the fields that measure time.
fn comparable(path: &Path) -> Vec<serde_json::Value> {
    let timing = aha_train::metrics::TIMING_FIELDS;
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut()
                .unwrap()
                .retain(|k, _| !timing.contains(&k.as_str()));
            v
        })
        .collect()
}

fn steps_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn sft_resume_reproduces_an_uninterrupted_run() {
    let dir = scratch("sft-resume");
    let (whole, split) = (dir.join("whole"), dir.join("split"));
    ok(&in_run(
        "sft",
        &sft_smoke(),
        &s(&whole),
        &["--set", "steps=4", "--set", "output.checkpoint_every=2"],
    ));
    ok(&in_run(
        "sft",
        &sft_smoke(),
        &s(&split),
        &["--set", "steps=2", "--set", "output.checkpoint_every=2"],
    ));
    // Starting over an existing run is refused.
    let err = fails(&["sft", &sft_smoke(), "--run-dir", &s(&split)]);
    assert!(err.contains("--resume"), "{err}");
    let out = ok(&in_run(
        "sft",
        &sft_smoke(),
        &s(&split),
        &[
            "--set",
            "steps=4",
            "--resume",
            "--set",
            "output.checkpoint_every=2",
        ],
    ));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resumed from"));
    let (a, b) = (
        comparable(&whole.join("metrics.jsonl")),
        comparable(&split.join("metrics.jsonl")),
    );
    assert_eq!(a.len(), 4);
    assert_eq!(a, b);
    // Same weights too: the step-4 checkpoints are byte-identical.
    let w = |d: &Path| std::fs::read(d.join("checkpoints/step_000004/model.safetensors")).unwrap();
    assert!(w(&whole) == w(&split));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_refuses_what_would_lose_or_mix_work() {
    let dir = scratch("resume-safety");
    let run = dir.join("run");
    ok(&in_run(
        "sft",
        &sft_smoke(),
        &s(&run),
        &["--set", "steps=2"],
    ));
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();

    // A changed config names the keys that differ and leaves the run as it was.
    let err = fails(&in_run(
        "sft",
        &sft_smoke(),
        &s(&run),
        &["--resume", "--set", "optim.lr=0.1", "--set", "seed=5"],
    ));
    assert!(err.contains("optim.lr, seed"), "{err}");
    // A bad config is rejected before the run directory is touched.
    let err = fails(&in_run(
        "sft",
        &sft_smoke(),
        &s(&run),
        &["--resume", "--set", "optim.lr=-1"],
    ));
    assert!(err.contains("optim.lr"), "{err}");
    assert_eq!(
        std::fs::read_to_string(run.join("config.toml")).unwrap(),
        config
    );
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.jsonl")).unwrap(),
        metrics
    );

    // No checkpoint to resume from: an error, and metrics.jsonl is kept.
    std::fs::remove_dir_all(run.join("checkpoints")).unwrap();
    let err = fails(&["sft", &sft_smoke(), "--run-dir", &s(&run), "--resume"]);
    assert!(err.contains("no complete checkpoint"), "{err}");
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.jsonl")).unwrap(),
        metrics
    );
    let err = fails(&in_run(
        "train",
        &smoke(),
        &s(&dir.join("none")),
        &["--resume"],
    ));
    assert!(err.contains("no complete checkpoint"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn keep_last_prunes_and_resume_cleans_interrupted_writes() {
    let dir = scratch("retention");
    let run = dir.join("run");
    let args = |steps: &str, resume: bool| {
        let mut a = vec![
            "sft".to_string(),
            sft_smoke(),
            "--run-dir".into(),
            s(&run),
            "--set".into(),
            format!("steps={steps}"),
            "--set".into(),
            "output.checkpoint_every=1".into(),
            "--set".into(),
            "output.keep_last=2".into(),
        ];
        if resume {
            a.push("--resume".into());
        }
        a
    };
    let run_it = |a: Vec<String>| ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    run_it(args("5", false));
    assert_eq!(steps_in(&run), ["step_000004", "step_000005"]);
    // What `kill -9` leaves mid-write, and a stranger's directory that must stay.
    let ck = run.join("checkpoints");
    std::fs::create_dir_all(ck.join(".step_000006.tmp-99-1/x")).unwrap();
    std::fs::create_dir_all(ck.join("notes")).unwrap();
    run_it(args("6", true));
    assert_eq!(steps_in(&run), ["notes", "step_000005", "step_000006"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Starts `aha ARGS` with piped output, waits until `run/metrics.jsonl` has `lines` lines (a
/// stretch with no checkpoint), sends `signal`, and returns the output.
fn stop_midway(args: &[&str], run: &Path, lines: usize, signal: &str) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_aha"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let metrics = run.join("metrics.jsonl");
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < lines {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
    assert!(sent.success());
    child.wait_with_output().unwrap()
}

/// The stopped run's last step, from its metrics.
fn last_step(run: &Path) -> usize {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    v["step"].as_u64().unwrap() as usize
}

#[test]
fn sigterm_stops_sft_with_a_checkpoint_and_resume_goes_on() {
    let dir = scratch("sigterm-sft");
    let run = dir.join("run");
    let base = ["sft", &sft_smoke(), "--run-dir", &s(&run)].map(String::from);
    let many = [
        "--set",
        "steps=1000000",
        "--set",
        "output.checkpoint_every=1000000",
    ];
    let args: Vec<&str> = base.iter().map(String::as_str).chain(many).collect();
    let out = stop_midway(&args, &run, 3, "-TERM");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    let step = last_step(&run);
    let ckpt = format!("step_{step:06}");
    assert!(
        err.contains(&format!("stopped by SIGTERM after step {step}")),
        "{err}"
    );
    assert!(err.contains(&ckpt) && err.contains("--resume"), "{err}");
    assert_eq!(steps_in(&run), [ckpt]);

    let steps = format!("steps={}", step + 2);
    let base: Vec<&str> = base.iter().map(String::as_str).collect();
    let out = ok(&[&base[..], &["--set", &steps, "--resume"]].concat());
    assert!(String::from_utf8_lossy(&out.stderr).contains("resumed from"));
    assert_eq!(last_step(&run), step + 2);
    assert_eq!(comparable(&run.join("metrics.jsonl")).len(), step + 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigint_stops_train_with_a_checkpoint_and_resume_goes_on() {
    let dir = scratch("sigint-train");
    let run = dir.join("run");
    let smoke = smoke();
    let base = ["train", &smoke, "--run-dir", &s(&run)];
    let many = [
        "--set",
        "steps=100000",
        "--set",
        "output.checkpoint_every=100000",
    ];
    let out = stop_midway(&[&base[..], &many[..]].concat(), &run, 2, "-INT");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let step = last_step(&run);
    assert!(
        err.contains(&format!("stopped by SIGINT after step {step}")),
        "{err}"
    );
    assert_eq!(steps_in(&run), [format!("step_{step:06}")]);
    let steps = format!("steps={}", step + 1);
    ok(&[&base[..], &["--set", &steps, "--resume"]].concat());
    assert_eq!(last_step(&run), step + 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn checkpoints_keep_every_end_of_sequence_id() {
    let dir = scratch("eos");
    let model = dir.join("model");
    ok(&["init", "--out", &s(&model)]);
    let eos = |d: &Path| -> serde_json::Value {
        let text = std::fs::read_to_string(d.join("generation_config.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["eos_token_id"].clone()
    };
    assert_eq!(eos(&model), serde_json::json!([2, 0]));
    let data = s(&repo().join("configs/sft_smoke.jsonl"));
    let cfg = dir.join("sft.toml");
    let text = format!("steps = 1\n[model]\npath = {model:?}\n[data]\npath = {data:?}\n");
    std::fs::write(&cfg, text).unwrap();
    let run = dir.join("run");
    ok(&["sft", &s(&cfg), "--run-dir", &s(&run)]);
    assert_eq!(
        eos(&run.join("checkpoints/step_000001")),
        serde_json::json!([2, 0])
    );

    let cfg = dir.join("grpo.toml");
    let text = format!(
        "steps = 1\n[model]\npath = {model:?}\n[data]\nsource = {{ kind = \"addition\", \
         digits = 1 }}\n[rollout]\nprompts_per_step = 2\ngroup_size = 2\nmax_new_tokens = 4\n"
    );
    std::fs::write(&cfg, text).unwrap();
    let run = dir.join("grpo");
    ok(&["train", &s(&cfg), "--run-dir", &s(&run)]);
    assert_eq!(
        eos(&run.join("checkpoints/step_000001")),
        serde_json::json!([2, 0])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn piped_stdout_gets_a_line_per_step_and_show_config_is_what_is_saved() {
    let dir = scratch("lines");
    for (cmd, cfg) in [("sft", sft_smoke()), ("train", smoke())] {
        let run = dir.join(cmd);
        let shown = ok(&[cmd, &cfg, "--set", "steps=3", "--show-config"]);
        let out = ok(&[cmd, &cfg, "--run-dir", &s(&run), "--set", "steps=3"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        for step in 1..=3 {
            assert!(
                stdout.contains(&format!("step {step}/3 ")),
                "{cmd}: {stdout}"
            );
        }
        let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
        assert_eq!(String::from_utf8_lossy(&shown.stdout), saved, "{cmd}");
        assert!(
            saved.contains("steps = 3") && saved.contains("keep_last = 3"),
            "{saved}"
        );
        assert!(run.join("samples.jsonl").is_file(), "{cmd}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_paths_start_at_the_config_and_command_line_paths_at_the_cwd() {
    let dir = scratch("paths");
    let (conf, cwd) = (dir.join("conf"), dir.join("cwd"));
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(cwd.join("data")).unwrap();
    let examples = std::fs::read_to_string(repo().join("configs/sft_smoke.jsonl")).unwrap();
    std::fs::write(conf.join("beside.jsonl"), &examples).unwrap();
    std::fs::write(
        cwd.join("data/here.jsonl"),
        examples.lines().next().unwrap(),
    )
    .unwrap();
    let text = "steps = 1\n[model]\ninit = \"demo_tiny\"\n[data]\npath = \"beside.jsonl\"\n";
    std::fs::write(conf.join("sft.toml"), text).unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_aha"))
            .current_dir(&cwd)
            .args([&["sft", "../conf/sft.toml", "--show-config"], extra].concat())
            .output()
            .unwrap()
    };
    let shown = String::from_utf8_lossy(&run(&[]).stdout).into_owned();
    let beside = std::fs::canonicalize(conf.join("beside.jsonl")).unwrap();
    let in_file: PathBuf = toml::from_str::<toml::Table>(&shown).unwrap()["data"]["path"]
        .as_str()
        .unwrap()
        .into();
    assert_eq!(std::fs::canonicalize(in_file).unwrap(), beside, "{shown}");
    // A --set path is the current directory's, and the run reads it.
    let out = run(&["--set", "data.path=data/here.jsonl"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("path = \"data/here.jsonl\""), "{shown}");
    let out = Command::new(env!("CARGO_BIN_EXE_aha"))
        .current_dir(&cwd)
        .args([
            "sft",
            "../conf/sft.toml",
            "--run-dir",
            "r",
            "--set",
            "data.path=data/here.jsonl",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(cwd.join("r/checkpoints/step_000001").is_dir());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The records of a TFRecord file, their CRCs checked.
fn tfrecords(path: &Path) -> Vec<Vec<u8>> {
    use aha_train::tensorboard::masked_crc32c;
    let bytes = std::fs::read(path).unwrap();
    let (mut at, mut out) = (0, Vec::new());
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    while at < bytes.len() {
        let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
        assert_eq!(u32_at(at + 8), masked_crc32c(&bytes[at..at + 8]));
        let data = bytes[at + 12..at + 12 + len].to_vec();
        assert_eq!(u32_at(at + 12 + len), masked_crc32c(&data));
        out.push(data);
        at += 16 + len;
    }
    out
}

/// Protobuf fields of a message: (field number, varint value or bytes).
fn fields(mut b: &[u8]) -> Vec<(u64, Result<u64, Vec<u8>>)> {
    fn varint(b: &mut &[u8]) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let byte = b[0];
            *b = &b[1..];
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return v;
            }
            shift += 7;
        }
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b);
        let value = match key & 7 {
            0 => Ok(varint(&mut b)),
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                let v = b[..n].to_vec();
                b = &b[n..];
                Err(v)
            }
            2 => {
                let n = varint(&mut b) as usize;
                let v = b[..n].to_vec();
                b = &b[n..];
                Err(v)
            }
            t => panic!("wire type {t}"),
        };
        out.push((key >> 3, value));
    }
    out
}

/// `(step, tag, value)` of every scalar in a run's event file.
fn scalars(run: &Path) -> Vec<(u64, String, f32)> {
    let file = std::fs::read_dir(run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        })
        .expect("an event file");
    let records = tfrecords(&file);
    let first = fields(&records[0]);
    assert_eq!(first[2], (3, Err(b"brain.Event:2".to_vec())));
    let mut out = Vec::new();
    for r in &records[1..] {
        let f = fields(r);
        let step = f
            .iter()
            .find(|(n, _)| *n == 2)
            .map_or(0, |(_, v)| *v.as_ref().unwrap());
        for (_, summary) in f.iter().filter(|(n, _)| *n == 5) {
            for (_, value) in fields(summary.as_ref().unwrap_err()) {
                let v = fields(value.as_ref().unwrap_err());
                let tag = String::from_utf8(v[0].1.clone().unwrap_err()).unwrap();
                let x = f32::from_le_bytes(v[1].1.clone().unwrap_err().try_into().unwrap());
                out.push((step, tag, x));
            }
        }
    }
    out
}

#[test]
fn tensorboard_event_files_hold_the_metrics() {
    let dir = scratch("tensorboard");
    let run = dir.join("grpo");
    ok(&in_run(
        "train",
        &smoke(),
        &s(&run),
        &["--set", "steps=2", "--set", "grpo.beta=0.01"],
    ));
    let got = scalars(&run);
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let line2: serde_json::Value = serde_json::from_str(metrics.lines().nth(1).unwrap()).unwrap();
    for tag in [
        "reward_mean",
        "accuracy",
        "completion_len_mean",
        "kl",
        "tokens_per_s",
        "cost_usd",
        "loss",
    ] {
        let (_, _, x) = got
            .iter()
            .find(|(s, t, _)| *s == 2 && *t == format!("grpo/{tag}"))
            .unwrap_or_else(|| panic!("no grpo/{tag} at step 2 in {got:?}"));
        assert_eq!(*x, line2[tag].as_f64().unwrap() as f32, "{tag}");
    }
    let run = dir.join("sft");
    ok(&in_run(
        "sft",
        &sft_smoke(),
        &s(&run),
        &["--set", "steps=2"],
    ));
    let got = scalars(&run);
    assert!(
        got.iter()
            .any(|(s, t, x)| *s == 1 && t == "sft/loss" && *x > 0.0),
        "{got:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The lines a child writes to stderr, as they come, and all of them once it has exited.
fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Reads `rx` until a line contains `needle`; every line read is appended to `seen`.
fn wait_for(rx: &std::sync::mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !seen.iter().any(|l| l.contains(needle)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(e) => panic!(
                "no line with {needle:?} ({e}); stderr so far:\n{}",
                seen.join("\n")
            ),
        }
    }
}

#[test]
fn a_second_signal_stops_at_once_and_the_last_checkpoint_resumes() {
    let dir = scratch("second-signal");
    let run = dir.join("run");
    let base = ["sft", &sft_smoke(), "--run-dir", &s(&run)].map(String::from);
    let base: Vec<&str> = base.iter().map(String::as_str).collect();
    // Steps long enough (a large batch of the 8 examples, in micro-batches) that the second
    // signal lands while the step the first one asked to finish is still running.
    let slow = [
        "--set",
        "sft.batch_size=2048",
        "--set",
        "sft.micro_batch_size=8",
        "--set",
        "output.checkpoint_every=2",
    ];
    let args = [&base[..], &slow[..], &["--set", "steps=1000000"]].concat();
    let mut child = Command::new(env!("CARGO_BIN_EXE_aha"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = stderr_lines(&mut child);
    let metrics = run.join("metrics.jsonl");
    let lines = || std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count());
    let started = Instant::now();
    while lines() < 3 {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    let mut seen = Vec::new();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    wait_for(&rx, "SIGTERM: stopping after the current step", &mut seen);
    let done_before = lines();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let second = Instant::now();
    let status = child.wait().unwrap();
    let waited = second.elapsed();
    seen.extend(rx.iter());
    let err = seen.join("\n");

    // At once: 128 + SIGINT, the second signal's message, no checkpoint and no new step.
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        err.contains("SIGINT: stopping now, without a checkpoint"),
        "{err}"
    );
    assert!(!err.contains("checkpoint saved"), "{err}");
    assert!(waited < Duration::from_secs(5), "took {waited:?}");
    assert_eq!(lines(), done_before, "the step in flight was abandoned");
    // On disk: the periodic checkpoints only, each complete, and every metrics line whole.
    let last = done_before - done_before % 2;
    let ckpts: Vec<String> = steps_in(&run)
        .into_iter()
        .filter(|n| n.starts_with("step_"))
        .collect();
    assert_eq!(ckpts.last(), Some(&format!("step_{last:06}")), "{ckpts:?}");
    assert_eq!(comparable(&metrics).len(), done_before);

    // --resume goes on from that checkpoint: the steps after it are redone, none is lost.
    let steps = format!("steps={}", last + 1);
    let out = ok(&[&base[..], &slow[..], &["--set", &steps, "--resume"]].concat());
    assert!(String::from_utf8_lossy(&out.stderr).contains("resumed from"));
    assert_eq!(last_step(&run), last + 1);
    assert_eq!(comparable(&metrics).len(), last + 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
