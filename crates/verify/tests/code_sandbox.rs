//! The code reward against real bubblewrap and python3: correct, wrong and partly correct
//! programs, then one hostile completion per test, each judged `correct: false` with the harm
//! it tried checked not to have happened. Needs root, `bwrap` and `setpriv` (`.ci/run` installs
//! bubblewrap); the limits are small so each test takes a second or two.
//!
//! Tests run in parallel threads, so each uses its own uids (`uid_base`).

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aha_verify::code::{
    processes_of, CodeConfig, CodeRunner, CodeVerdict, Problem, Status, TestCase,
};

fn runner(uid_base: u32, edit: impl FnOnce(&mut CodeConfig)) -> CodeRunner {
    let mut config = CodeConfig {
        timeout_s: 2.0,
        cpu_s: Some(1),
        memory_mb: 256,
        processes: 16,
        output_kb: 64,
        disk_mb: 4,
        parallel: Some(2),
        uid_base,
        ..CodeConfig::default()
    };
    edit(&mut config);
    CodeRunner::new(config).unwrap()
}

fn fenced(program: &str) -> String {
    format!("Here is my solution.\n```python\n{program}\n```\n")
}

fn test(input: &str, output: &str) -> TestCase {
    TestCase {
        input: input.into(),
        output: output.into(),
    }
}

/// Judges one program against `tests`; prints the outcome and time for the record.
fn judge(r: &CodeRunner, name: &str, program: &str, tests: &[TestCase]) -> (CodeVerdict, Duration) {
    let completion = fenced(program);
    let t = Instant::now();
    let (v, _) = r
        .judge(&[Problem {
            completion: &completion,
            tests,
        }])
        .unwrap();
    let took = t.elapsed();
    eprintln!("{name}: {v:?} in {took:.2?}");
    (v[0], took)
}

/// No process of the runner's uids is left.
fn assert_no_leftovers(r: &CodeRunner) {
    for slot in 0..r.config().parallelism() {
        let left = processes_of(r.sandbox().uid(slot));
        assert!(left.is_empty(), "slot {slot} left processes {left:?}");
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("code_sandbox_{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const ADD: &str = "a, b = map(int, input().split())\nprint(a + b)";

#[test]
fn correct_program_passes_and_wrong_one_fails() {
    let r = runner(2_100_000_000, |_| {});
    let tests = [
        test("1 2\n", "3"),
        test("40 2", "42\n"),
        test("-5 5\n", " 0 "),
    ];
    let (v, _) = judge(&r, "correct", ADD, &tests);
    assert_eq!((v.reward, v.correct, v.passed), (1.0, true, 3));
    let (v, _) = judge(
        &r,
        "wrong",
        "a, b = map(int, input().split())\nprint(a * b)",
        &tests,
    );
    assert_eq!((v.reward, v.correct), (0.0, false));
    // Right output, but the program then fails: not a pass.
    let (v, _) = judge(&r, "crash", &format!("{ADD}\nraise SystemExit(3)"), &tests);
    assert!(!v.correct);
    let (v, _) = r
        .judge(&[Problem {
            completion: "print(3) with no fence",
            tests: &tests,
        }])
        .map(|(v, _)| (v[0], ()))
        .unwrap();
    assert_eq!((v.correct, v.has_program), (false, false));
}

#[test]
fn partial_credit_is_the_passed_fraction() {
    let tests = [test("1 2", "3"), test("2 2", "4"), test("3 3", "7")];
    let r = runner(2_100_000_100, |c| c.partial = true);
    let (v, _) = judge(&r, "partial", ADD, &tests);
    assert_eq!((v.passed, v.correct), (2, false));
    assert!((v.reward - 2.0 / 3.0).abs() < 1e-6, "{v:?}");
    let r = runner(2_100_000_200, |_| {});
    let (v, _) = judge(&r, "all_or_nothing", ADD, &tests);
    assert_eq!((v.reward, v.correct), (0.0, false));
}

#[test]
fn batch_keeps_order_across_parallel_slots() {
    let r = runner(2_100_000_300, |c| c.parallel = Some(3));
    let good = fenced(ADD);
    let bad = fenced("print(0)");
    let tests = [test("1 1", "2"), test("2 3", "5")];
    let problems: Vec<Problem> = (0..6)
        .map(|i| Problem {
            completion: if i % 2 == 0 { &good } else { &bad },
            tests: &tests,
        })
        .collect();
    let (v, stats) = r.judge(&problems).unwrap();
    let correct: Vec<bool> = v.iter().map(|v| v.correct).collect();
    assert_eq!(correct, [true, false, true, false, true, false]);
    // 3 good × 2 tests; a bad one stops at its first failure unless its second test had
    // already started in another slot.
    assert!((9..=12).contains(&stats.executions), "{stats:?}");
    assert_no_leftovers(&r);
}

#[test]
fn infinite_loop_is_stopped_by_the_cpu_limit() {
    let r = runner(2_100_000_400, |c| c.timeout_s = 4.0);
    let (v, took) = judge(
        &r,
        "infinite_loop",
        "while True:\n    pass",
        &[test("", "done")],
    );
    assert!(!v.correct);
    assert!(took < Duration::from_secs(5), "{took:?}");
    // CPU limit 1 s (SIGKILL, so 128 + 9); on a loaded machine the 4 s wall limit may come first.
    let run = r.sandbox().run(0, "while True:\n    pass", b"").unwrap();
    eprintln!("infinite_loop: {:?} after {:.2?}", run.status, run.elapsed);
    assert!(
        matches!(run.status, Status::TimedOut | Status::Exited(137)),
        "{run:?}"
    );
    assert_no_leftovers(&r);
}

#[test]
fn sleep_is_stopped_by_the_wall_limit() {
    let r = runner(2_100_000_500, |c| c.timeout_s = 1.0);
    let program = "import time\ntime.sleep(60)\nprint('done')";
    let (v, took) = judge(&r, "sleep", program, &[test("", "done")]);
    assert!(!v.correct);
    assert!(took < Duration::from_secs(2), "{took:?}");
    let run = r.sandbox().run(0, program, b"").unwrap();
    assert_eq!(run.status, Status::TimedOut);
    assert!(run.elapsed < Duration::from_millis(1500), "{run:?}");
    assert_no_leftovers(&r);
}

#[test]
fn fork_bomb_is_held_by_the_process_limit() {
    let r = runner(2_100_000_600, |c| {
        c.timeout_s = 1.5;
        c.parallel = Some(1);
    });
    let uid = r.sandbox().uid(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    let program =
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass";
    let (most, (v, took)) = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(processes_of(uid).len());
                std::thread::sleep(Duration::from_millis(5));
            }
            most
        });
        let verdict = judge(&r, "fork_bomb", program, &[test("", "done")]);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (watcher.join().unwrap(), verdict)
    });
    eprintln!("fork_bomb: at most {most} processes of uid {uid}");
    assert!(!v.correct);
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert!(most <= 16, "{most} processes under a limit of 16");
    assert_no_leftovers(&r);
}

#[test]
fn memory_bomb_hits_the_address_space_limit() {
    let r = runner(2_100_000_700, |_| {});
    let program = "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 2**20))";
    let (v, _) = judge(&r, "memory_bomb", program, &[test("", "done")]);
    assert!(!v.correct);
    let run = r.sandbox().run(0, program, b"").unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("MemoryError"), "{run:?}");
    assert_eq!(run.status, Status::Exited(1));
    // The private /tmp is capped too: filling it is not a way around the memory limit.
    let fill = "i = 0\nwhile True:\n    open(f'/tmp/f{i}', 'wb').write(b'x' * 2**20)\n    i += 1";
    let run = r.sandbox().run(0, fill, b"").unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("No space left on device"), "{run:?}");
}

#[test]
fn endless_output_is_capped() {
    let r = runner(2_100_000_800, |_| {});
    let program = "while True:\n    print('x' * 1000)";
    let (v, _) = judge(&r, "endless_output", program, &[test("", "x")]);
    assert!(!v.correct);
    let run = r.sandbox().run(0, program, b"").unwrap();
    assert_eq!(run.status, Status::OutputLimit);
    // Killed at the cap, not at the 2 s wall limit.
    assert!(run.elapsed < Duration::from_millis(1500), "{run:?}");
    assert!(run.stdout.len() <= 64 * 1024, "{}", run.stdout.len());
    // stderr counts too.
    let err = "import sys\nwhile True:\n    sys.stderr.write('y' * 1000)";
    assert_eq!(
        r.sandbox().run(0, err, b"").unwrap().status,
        Status::OutputLimit
    );
    assert_no_leftovers(&r);
}

#[test]
fn local_port_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let r = runner(2_100_000_900, |_| {});
    let program = format!(
        "import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n\
         s.sendall(b'hello')\nprint('connected')"
    );
    let (v, _) = judge(&r, "local_port", &program, &[test("", "connected")]);
    assert!(!v.correct);
    // The sandbox has a loopback of its own, on which nothing listens.
    let run = r.sandbox().run(0, &program, b"").unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    eprintln!("local_port: {stderr}");
    assert!(stderr.contains("ConnectionRefusedError"), "{stderr}");
    let program = "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)";
    let run = r.sandbox().run(0, program, b"").unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("Network is unreachable"), "{stderr}");
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the listener got {other:?}"),
    }
}

#[test]
fn files_and_environment_stay_hidden() {
    let secret = "aha-secret-7c1f0e";
    let dir = scratch("secrets");
    let in_run_dir = dir.join("secret.txt");
    std::fs::write(&in_run_dir, secret).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let home = PathBuf::from(std::env::var("HOME").unwrap()).join(".aha_code_sandbox_secret");
    std::fs::write(&home, secret).unwrap();
    std::env::set_var("AHA_CODE_SANDBOX_SECRET", secret);
    let r = runner(2_100_001_000, |_| {});
    let reads = [
        format!("print(open({:?}).read())", in_run_dir.display().to_string()),
        format!("print(open({:?}).read())", home.display().to_string()),
        "import os\nprint(os.environ.get('AHA_CODE_SANDBOX_SECRET'))".to_string(),
        // The sandbox's PID 1 and the host's environment are both out of reach.
        "print(open('/proc/1/environ').read())".to_string(),
        "import os\nprint(''.join(open(f'/proc/{p}/environ').read() for p in os.listdir('/proc') if p.isdigit()))".to_string(),
    ];
    for program in &reads {
        let (v, _) = judge(&r, "read_secret", program, &[test("", secret)]);
        assert!(!v.correct, "{program}");
    }
    let env = r
        .sandbox()
        .run(0, "import os\nprint(dict(os.environ))", b"")
        .unwrap();
    let env = String::from_utf8_lossy(&env.stdout);
    assert!(!env.contains(secret) && !env.contains("CARGO"), "{env}");
    std::fs::remove_file(&home).unwrap();
}

#[test]
fn writes_outside_tmp_do_not_land() {
    let dir = scratch("writes");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let target = dir.join("pwned.txt");
    let _ = std::fs::remove_file(&target);
    let r = runner(2_100_001_100, |_| {});
    let paths = [
        target.display().to_string(),
        "/usr/pwned.txt".into(),
        "/pwned.txt".into(),
        "/dev/shm/pwned.txt".into(),
        "/dev/pwned.txt".into(),
    ];
    for path in paths {
        let program = format!("open({path:?}, 'w').write('x')\nprint('written')");
        let (v, _) = judge(&r, "write_outside", &program, &[test("", "written")]);
        assert!(!v.correct, "{path}");
    }
    assert!(!target.exists());
    assert!(!std::path::Path::new("/usr/pwned.txt").exists());
    // Its own /tmp works, and is gone with the run.
    let (v, _) = judge(
        &r,
        "write_tmp",
        "open('/tmp/a', 'w').write('ok')\nprint(open('/tmp/a').read())",
        &[test("", "ok")],
    );
    assert!(v.correct);
}

/// A process whose command line contains `marker`, anywhere on the host.
fn find_cmdline(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(marker))
        .collect()
}

#[test]
fn background_process_does_not_outlive_the_run() {
    let r = runner(2_100_001_200, |_| {});
    // Double fork into a new session, then exec a long sleep the host could find.
    let program = "import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        \
                   os.execv('/usr/bin/sleep', ['sleep', '31.4159'])\n    os._exit(0)\nprint('started')";
    let (v, _) = judge(&r, "background", program, &[test("", "done")]);
    assert!(!v.correct);
    let run = r.sandbox().run(0, program, b"").unwrap();
    assert_eq!(run.stdout, b"started\n");
    assert!(
        find_cmdline("31.4159").is_empty(),
        "{:?}",
        find_cmdline("31.4159")
    );
    assert_no_leftovers(&r);
}

#[test]
fn killing_the_parent_harms_nothing() {
    let r = runner(2_100_001_300, |_| {});
    let attacks = [
        "import os\nos.kill(os.getppid(), 9)\nprint('alive')",
        "import os\nos.kill(1, 9)\nprint('alive')",
        "import os\nos.killpg(0, 9)\nprint('alive')",
        "import os\nos.kill(-1, 9)\nprint('alive')",
        // Guess host pids: the namespace has no others to reach.
        "import os\nfor p in range(3, 5000):\n    try:\n        os.kill(p, 9)\n    except OSError:\n        pass\nprint('alive')",
    ];
    for program in attacks {
        let (v, _) = judge(&r, "kill_parent", program, &[test("", "dead")]);
        assert!(!v.correct, "{program}");
    }
    // aha is still here, and its sandbox still works.
    let (v, _) = judge(&r, "after_kill", ADD, &[test("2 2", "4")]);
    assert!(v.correct);
    assert_no_leftovers(&r);
}

#[test]
fn sandbox_cannot_nest_namespaces_or_gain_privileges() {
    let r = runner(2_100_001_400, |_| {});
    let program = "import subprocess\n\
                   print(subprocess.run(['unshare', '-U', 'true']).returncode)\n\
                   print(open('/proc/self/status').read().split('NoNewPrivs:')[1].split()[0])";
    let run = r.sandbox().run(0, program, b"").unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["1", "1"], "{run:?}");
    assert_no_leftovers(&r);
}

#[test]
fn reward_term_from_config_scores_a_batch_by_row() {
    #[derive(serde::Deserialize)]
    struct Cfg {
        reward: Vec<aha_verify::RewardSpec>,
    }
    let toml = r#"
        [[reward]]
        kind = "code"
        weight = 2.0
        partial = true
        timeout_s = 2.0
        parallel = 2
        uid_base = 2100001500

        [[reward]]
        kind = "format"
        weight = 0.5
    "#;
    let cfg: Cfg = toml::from_str(toml).unwrap();
    let reward = aha_verify::Reward::new(cfg.reward).unwrap();
    assert_eq!(reward.names(), ["code", "format"]);
    let row: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
        "tests": [{"input": "1 2", "output": "3"}, {"input": "2 2", "output": "4"}, {"input": "3 3", "output": "7"}]
    }))
    .unwrap();
    let completions = [
        format!("<think>t</think><answer>\n```python\n{ADD}\n```\n</answer>"),
        "no program".to_string(),
    ];
    let inputs: Vec<aha_verify::RewardInput> = completions
        .iter()
        .enumerate()
        .map(|(id, c)| aha_verify::RewardInput {
            id,
            prompt: "add",
            completion: c,
            row: &row,
        })
        .collect();
    let refs = vec![aha_verify::Reference::default(); inputs.len()];
    let scored = reward.score_batch(&inputs, &refs).unwrap();
    // 2 × 2/3 for the code term plus 0.5 × 1 for the format.
    assert!(
        (scored[0].reward.unwrap() - (2.0 * 2.0 / 3.0 + 0.5)).abs() < 1e-5,
        "{scored:?}"
    );
    assert_eq!(scored[0].correct, Some(false));
    assert_eq!(
        (scored[1].reward, scored[1].correct),
        (Some(0.0), Some(false))
    );
    assert!(
        reward.reports()[0].contains("executions/s"),
        "{:?}",
        reward.reports()
    );
    // A row without tests is an error, not a 0.
    let empty = serde_json::Map::new();
    let bad = [aha_verify::RewardInput {
        id: 0,
        prompt: "",
        completion: "x",
        row: &empty,
    }];
    let err = reward
        .score_batch(&bad, &refs[..1])
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing field \"tests\""), "{err}");
    // Bad options are refused when the config is checked, before anything starts.
    let bad: Cfg =
        toml::from_str("[[reward]]\nkind = \"code\"\nweight = 1\nmemory_mb = 1").unwrap();
    assert!(aha_verify::Reward::check(&bad.reward).is_err());
    assert!(toml::from_str::<Cfg>("[[reward]]\nkind = \"code\"\nweight = 1\ntimeout = 1").is_err());
}

/// Scores JSONL text as `aha reward` does after reading it (blank lines counted).
fn score_text(
    task: aha_verify::Task,
    input: &str,
    out: &mut Vec<u8>,
) -> Result<aha_verify::Summary, aha_verify::Error> {
    let rows = (input.lines().enumerate())
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, serde_json::from_str(l).unwrap()));
    aha_verify::score_rows(&task.reward(), rows, "c.jsonl", out)
}

#[test]
fn code_task_scores_jsonl_and_names_missing_tests() {
    let tests = r#"[{"input": "4 5", "output": "9"}]"#;
    let good = fenced(ADD).replace('\n', "\\n").replace('"', "\\\"");
    let input = format!(
        "{{\"completion\": \"{good}\", \"tests\": {tests}}}\n\n{{\"completion\": \"x\", \"tests\": {tests}}}\n"
    );
    let mut out = Vec::new();
    let sum = score_text(aha_verify::Task::Code, &input, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        (sum.lines, sum.correct, sum.correct_judged),
        (2, 1, 2),
        "{out}"
    );
    assert!(
        out.lines()
            .next()
            .unwrap()
            .starts_with(r#"{"reward":1.0,"correct":true"#),
        "{out}"
    );
    let missing = "{\"completion\": \"x\", \"answer\": \"1\"}\n";
    let err = score_text(aha_verify::Task::Code, missing, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert_eq!(err, "c.jsonl:1: missing field \"tests\"");
}
