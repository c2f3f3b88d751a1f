//! `kind = "command"` against real processes: `tests/fixtures/reward/judge.py` (Python 3), whose
//! first argument picks a behaviour — a good judge, a crash mid-batch, a hang, garbage output,
//! a wrong id.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aha_verify::{
    BatchReward, CommandReward, Error, Reference, Reward, RewardInput, RewardSpec, ThinkRule,
};
use serde_json::{json, Map, Value};

fn judge(args: &[&str]) -> Vec<String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reward/judge.py");
    let mut cmd = vec!["python3".to_string(), script.display().to_string()];
    cmd.extend(args.iter().map(|a| a.to_string()));
    cmd
}

fn rows(objects: &[Value]) -> Vec<Map<String, Value>> {
    objects
        .iter()
        .map(|o| o.as_object().cloned().unwrap())
        .collect()
}

fn inputs<'a>(rows: &'a [Map<String, Value>], completions: &'a [&'a str]) -> Vec<RewardInput<'a>> {
    rows.iter()
        .zip(completions)
        .enumerate()
        .map(|(id, (row, completion))| RewardInput {
            id,
            prompt: "what is 2+2?",
            completion,
            row,
        })
        .collect()
}

fn command_error(err: Error) -> String {
    match err {
        Error::Command { .. } => err.to_string(),
        other => panic!("expected a command error, got {other:?}"),
    }
}

#[test]
fn rewards_are_matched_by_id_with_row_fields_and_nulls() {
    let pid_file = std::env::temp_dir().join(format!("aha-judge-{}.pid", std::process::id()));
    let pid_arg = pid_file.display().to_string();
    let reward = Reward::new(vec![
        RewardSpec::Format {
            weight: 0.5,
            think: ThinkRule::Optional,
        },
        RewardSpec::Command {
            weight: 2.0,
            command: judge(&["judge", &pid_arg]),
            timeout_s: 20.0,
        },
    ])
    .unwrap();
    let rows = rows(&[
        json!({"answer": "4"}),
        json!({"answer": 5}),
        json!({"unrelated": true}),
        json!({"answer": "4", "flush": true}),
    ]);
    let completions = ["4", "4", "4", " 4\n"];
    let refs = vec![Reference::default(); 4];
    // Answers come back in reverse order; aha matches them by id.
    let scored = reward
        .score_batch(&inputs(&rows, &completions), &refs)
        .unwrap();
    let got: Vec<(Option<f32>, Option<bool>)> =
        scored.iter().map(|s| (s.reward, s.correct)).collect();
    // Format gives 0 (no template) but judges; the program's null is excluded, not 0.
    assert_eq!(
        got,
        [
            (Some(2.0), Some(true)),
            (Some(0.0), Some(false)),
            (Some(0.0), None),
            (Some(2.0), Some(true)),
        ]
    );
    assert_eq!(scored[2].components, [Some(0.0), None]);
    // The same process serves the next batch.
    let again = reward
        .score_batch(&inputs(&rows[3..], &completions[..1]), &refs[..1])
        .unwrap();
    assert_eq!(again[0].reward, Some(2.0));

    // Dropping the reward kills the program.
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(reward);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} survived"
    );
    let _ = std::fs::remove_file(pid_file);
}

#[test]
fn one_process_serves_every_batch_and_large_batches_do_not_deadlock() {
    let r = CommandReward::start(&judge(&["count"]), Duration::from_secs(30)).unwrap();
    // ~4 MB each way of the pipe: the program answers while aha is still writing.
    let big = "x".repeat(2000);
    let rows = rows(&vec![json!({"answer": "1"}); 2000]);
    let completions: Vec<&str> = vec![big.as_str(); 2000];
    let first = r.score_batch(&inputs(&rows, &completions)).unwrap();
    assert_eq!(first.len(), 2000);
    assert_eq!(
        (first[0].reward, first[1999].reward),
        (Some(1.0), Some(2000.0))
    );
    let second = r
        .score_batch(&inputs(&rows[..2], &completions[..2]))
        .unwrap();
    assert_eq!(
        second[1].reward,
        Some(2002.0),
        "the same process counted on"
    );
}

#[test]
fn a_crash_mid_batch_names_the_command_status_and_stderr() {
    let cmd = judge(&["crash", "2"]);
    let r = CommandReward::start(&cmd, Duration::from_secs(20)).unwrap();
    let rows = rows(&vec![json!({}); 4]);
    let completions = ["a", "b", "the third", "d"];
    let msg = command_error(r.score_batch(&inputs(&rows, &completions)).unwrap_err());
    assert!(
        msg.starts_with(&format!(
            "reward command `{}` exited (exit status: 1)",
            cmd.join(" ")
        )),
        "{msg}"
    );
    assert!(msg.contains("after answering 2 of the 4 inputs"), "{msg}");
    assert!(msg.contains("judging the third"), "{msg}");
    assert!(
        msg.contains("ZeroDivisionError: the judge divided by zero"),
        "{msg}"
    );
    // A dead reward stays dead: the next batch fails with the same message.
    let again = command_error(r.score_batch(&inputs(&rows, &completions)).unwrap_err());
    assert_eq!(again, msg);
}

#[test]
fn a_hang_times_out() {
    let r = CommandReward::start(&judge(&["hang"]), Duration::from_millis(700)).unwrap();
    let rows = rows(&[json!({})]);
    let t = Instant::now();
    let msg = command_error(r.score_batch(&inputs(&rows, &["x"])).unwrap_err());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(
        msg.contains("timed out: answered 0 of the 1 inputs"),
        "{msg}"
    );
    assert!(msg.contains("killed (signal: 9"), "{msg}");
}

#[test]
fn garbage_and_wrong_ids_are_errors() {
    let rows = rows(&[json!({}), json!({})]);
    let r = CommandReward::start(&judge(&["garbage"]), Duration::from_secs(20)).unwrap();
    let msg = command_error(r.score_batch(&inputs(&rows, &["a", "b"])).unwrap_err());
    assert!(
        msg.contains(r#"printed a line that is not {"id": n, "reward": number|null} (not JSON"#)
            && msg.contains("loading my model..."),
        "{msg}"
    );
    let r = CommandReward::start(&judge(&["wrong_id"]), Duration::from_secs(20)).unwrap();
    let msg = command_error(r.score_batch(&inputs(&rows, &["a", "b"])).unwrap_err());
    assert!(
        msg.contains("id 100 is not in this batch of 2 (0..2)"),
        "{msg}"
    );
}

#[test]
fn a_missing_program_or_a_bad_spec_is_a_clear_error() {
    let err = Reward::new(vec![RewardSpec::Command {
        weight: 1.0,
        command: vec!["/nonexistent/judge".into()],
        timeout_s: 1.0,
    }])
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("reward command `/nonexistent/judge` cannot be started: "),
        "{err}"
    );
    let spec: toml::Table =
        toml::from_str("[[reward]]\nkind = \"command\"\nweight = 1.0\ncommand = []\n").unwrap();
    let specs: Vec<RewardSpec> = spec["reward"].clone().try_into().unwrap();
    let err = Reward::check(&specs).unwrap_err().to_string();
    assert_eq!(
        err,
        "reward term 0 (command): `command` must name a program"
    );
    let specs = vec![RewardSpec::Command {
        weight: 1.0,
        command: vec!["python3".into()],
        timeout_s: 0.0,
    }];
    assert!(Reward::check(&specs)
        .unwrap_err()
        .to_string()
        .contains("timeout_s = 0 must be > 0"));
}
