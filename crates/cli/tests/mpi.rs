//! Data-parallel runs under `mpirun` (built with `--features mpi`): two ranks give the
//! one-process run's numbers (SFT, GRPO with refill, minibatches, several passes and KL; eval;
//! rejection sampling), a run resumes on another number of ranks, and a rank that fails or
//! dies ends the whole job with a message naming it and leaves only complete checkpoints.
//! Without the feature: a launcher is refused rather than starting independent copies.

mod common;

use std::process::Command;

/// `aha ARGS` under a fake launcher environment: a build without MPI must refuse to run as
/// one of several independent copies.
#[cfg(not(feature = "mpi"))]
#[test]
fn a_launcher_without_the_mpi_feature_is_refused() {
    let dir = common::scratch("no-mpi");
    let out = Command::new(env!("CARGO_BIN_EXE_aha"))
        .args(["train", "../../configs/smoke.toml", "--run-dir"])
        .arg(dir.join("run"))
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--features mpi"), "{err}");
    assert!(!dir.join("run/metrics.jsonl").exists());
}

#[cfg(feature = "mpi")]
mod with_mpi {
    use super::*;
    use serde_json::Value;
    use std::path::Path;
    use std::process::Output;
    use std::time::{Duration, Instant};

    /// `mpirun -np N aha ARGS` (one thread per rank), as root in containers too.
    fn mpirun(np: usize, args: &[&str]) -> Output {
        launcher(&["-np", &np.to_string(), env!("CARGO_BIN_EXE_aha")], args)
            .output()
            .expect("running mpirun (apt-get install openmpi-bin)")
    }

    fn launcher(pre: &[&str], args: &[&str]) -> Command {
        let mut c = Command::new("mpirun");
        c.args(["--allow-run-as-root", "--oversubscribe"])
            .args(pre)
            .args(args)
            .env("RAYON_NUM_THREADS", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            // Containers often block the cross-process memory attach shared memory prefers.
            .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
        c
    }

    fn ok(out: Output, what: &str) {
        assert!(
            out.status.success(),
            "{what} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn jsonl(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Asserts two metrics files agree step by step on `fields` within 1e-4 relative (only
    /// the order of float sums differs between world sizes).
    fn same_metrics(a: &Path, b: &Path, fields: &[&str]) {
        let (a, b) = (jsonl(a), jsonl(b));
        assert_eq!(a.len(), b.len());
        assert!(!a.is_empty());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x["step"], y["step"]);
            for f in fields {
                let (u, v) = (&x[*f], &y[*f]);
                if let (Some(u), Some(v)) = (u.as_f64(), v.as_f64()) {
                    let scale = u.abs().max(v.abs()).max(1e-6);
                    assert!(
                        (u - v).abs() <= 1e-4 * scale,
                        "step {} {f}: {u} vs {v}",
                        x["step"]
                    );
                } else {
                    assert_eq!(u, v, "step {} {f}", x["step"]);
                }
            }
        }
    }

    const GRPO_FIELDS: &[&str] = &[
        "loss",
        "reward_mean",
        "reward_std",
        "grad_norm",
        "kl",
        "entropy",
        "clip_fraction",
        "accuracy",
        "completion_len_mean",
        "completion_len_max",
        "groups_generated",
        "groups_trained",
        "generated_tokens",
        "lr",
    ];

    /// A GRPO config over 1-digit sums: 5 prompts (uneven shards), refill rounds, two
    /// minibatches, two passes, token-mean loss, KL to the reference.
    fn grpo_config(dir: &Path, model: &str, steps: usize) -> std::path::PathBuf {
        let path = dir.join(format!("grpo{steps}.toml"));
        let text = format!(
            "name = \"g\"\nseed = 3\nsteps = {steps}\n[model]\n{model}\n[data]\n\
             source = {{ kind = \"addition\", digits = 1 }}\n\
             template = {{ kind = \"format\", format = \"Q:{{prompt}}=\" }}\n\
             [rollout]\nprompts_per_step = 5\ngroup_size = 4\nmax_new_tokens = 12\n\
             [grpo]\nbeta = 0.04\naggregation = \"token_mean\"\npasses = 2\nminibatches = 2\n\
             micro_batch_size = 3\nfilter = \"drop_uniform\"\nmax_refill_rounds = 1\n\
             overlong = {{ kind = \"soft_penalty\", buffer = 8, factor = 1.0 }}\n\
             [optim]\nlr = 1e-3\n[output]\ncheckpoint_every = 2\nprogress = false\n"
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn s(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    fn sft_config(dir: &Path) -> std::path::PathBuf {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/sft_smoke.jsonl");
        let path = dir.join("sft.toml");
        let text = format!(
            "name = \"s\"\nsteps = 30\n[model]\ninit = \"demo_tiny\"\n[data]\npath = {data:?}\n\
             [sft]\nbatch_size = 8\nmicro_batch_size = 3\n[optim]\nlr = 3e-3\n\
             [output]\ncheckpoint_every = 30\nprogress = false\n"
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// SFT, then GRPO from its checkpoint, then eval and rejection sampling of the result: each
    /// on one process and on two ranks.
    #[test]
    fn two_ranks_give_the_one_process_numbers() {
        let dir = common::scratch("mpi-equal");
        let sft = sft_config(&dir);
        for np in [1, 2] {
            let run = dir.join(format!("sft{np}"));
            ok(
                mpirun(np, &["sft", s(&sft), "--run-dir", s(&run)]),
                "aha sft",
            );
        }
        same_metrics(
            &dir.join("sft1/metrics.jsonl"),
            &dir.join("sft2/metrics.jsonl"),
            &["loss", "grad_norm", "tokens", "lr"],
        );

        let base = dir.join("sft1/checkpoints/step_000030");
        let model = format!("path = {:?}", s(&base));
        let cfg = grpo_config(&dir, &model, 4);
        for np in [1, 2] {
            let run = dir.join(format!("grpo{np}"));
            ok(
                mpirun(np, &["train", s(&cfg), "--run-dir", s(&run)]),
                "aha train",
            );
        }
        let (m1, m2) = (
            dir.join("grpo1/metrics.jsonl"),
            dir.join("grpo2/metrics.jsonl"),
        );
        same_metrics(&m1, &m2, GRPO_FIELDS);
        // Rank 0 alone wrote: one line per step, samples once.
        assert_eq!(jsonl(&m2).len(), 4);
        let rewarded = jsonl(&m1)
            .iter()
            .any(|m| m["reward_mean"].as_f64() > Some(0.0));
        assert!(rewarded, "the SFT model should earn some reward");
        assert!(dir
            .join("grpo2/checkpoints/step_000004/model.safetensors")
            .is_file());

        // Eval and rejection sampling of the trained model: identical outputs.
        let problems = dir.join("problems.jsonl");
        let lines: String = (0..7)
            .map(|i| format!("{{\"prompt\": \"{}+{}\", \"answer\": {}}}\n", i, i, 2 * i))
            .collect();
        std::fs::write(&problems, lines).unwrap();
        let trained = dir.join("grpo1/checkpoints/step_000004");
        let common_args = |cmd: &'static str| {
            vec![
                cmd.to_string(),
                "--model".into(),
                s(&trained).into(),
                "--task".into(),
                "arithmetic".into(),
                "--input".into(),
                s(&problems).into(),
                "--k".into(),
                "3".into(),
                "--temperature".into(),
                "1".into(),
                "--max-new-tokens".into(),
                "12".into(),
                "--template".into(),
                "Q:{prompt}=".into(),
                "--prompts-per-batch".into(),
                "2".into(),
            ]
        };
        let mut printed = Vec::new();
        for np in [1, 2] {
            let mut eval = common_args("eval");
            eval.extend([
                "--output".into(),
                s(&dir.join(format!("eval{np}.jsonl"))).into(),
            ]);
            let e: Vec<&str> = eval.iter().map(String::as_str).collect();
            let out = mpirun(np, &e);
            printed.push(String::from_utf8_lossy(&out.stdout).into_owned());
            ok(out, "aha eval");
            let mut rs = common_args("rejection-sample");
            rs.extend([
                "--output".into(),
                s(&dir.join(format!("rs{np}.jsonl"))).into(),
            ]);
            let r: Vec<&str> = rs.iter().map(String::as_str).collect();
            let out = mpirun(np, &r);
            printed.push(String::from_utf8_lossy(&out.stdout).into_owned());
            ok(out, "aha rejection-sample");
        }
        assert_eq!(printed[0], printed[2], "eval summaries");
        assert_eq!(printed[1], printed[3], "rejection-sample counts");
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
        assert_eq!(read("eval1.jsonl"), read("eval2.jsonl"));
        assert_eq!(jsonl(&dir.join("eval2.jsonl")).len(), 7);
        assert_eq!(read("rs1.jsonl"), read("rs2.jsonl"));
    }

    /// Two steps on two ranks resumed to four on one, and two on one resumed on two: both equal
    /// four steps on one process.
    #[test]
    fn a_run_resumes_on_another_number_of_ranks() {
        let dir = common::scratch("mpi-resume");
        let model = "init = \"demo_tiny\"";
        let (four, two) = (grpo_config(&dir, model, 4), grpo_config(&dir, model, 2));
        let whole = dir.join("whole");
        ok(
            mpirun(1, &["train", s(&four), "--run-dir", s(&whole)]),
            "np 1",
        );
        for (first, then) in [(2, 1), (1, 2)] {
            let run = dir.join(format!("from{first}to{then}"));
            ok(
                mpirun(first, &["train", s(&two), "--run-dir", s(&run)]),
                "first half",
            );
            let args = ["train", s(&four), "--run-dir", s(&run), "--resume"];
            ok(mpirun(then, &args), "resumed half");
            same_metrics(
                &whole.join("metrics.jsonl"),
                &run.join("metrics.jsonl"),
                GRPO_FIELDS,
            );
        }
    }

    /// Rank 1 alone reads a bad data file (its config sits beside another copy): the job ends at once
    /// with rank 1's error, naming the file and line; nothing is trained or checkpointed.
    #[test]
    fn a_failing_rank_ends_the_job_with_its_error() {
        let dir = common::scratch("mpi-fault");
        let (good, bad) = (dir.join("good"), dir.join("bad"));
        std::fs::create_dir_all(&good).unwrap();
        std::fs::create_dir_all(&bad).unwrap();
        let row = "{\"prompt\": \"1+1\", \"answer\": \"2\"}\n";
        std::fs::write(good.join("problems.jsonl"), row.repeat(4)).unwrap();
        std::fs::write(
            bad.join("problems.jsonl"),
            format!("{row}{{\"prompt\": 3\n"),
        )
        .unwrap();
        let text = "name = \"f\"\nsteps = 2\n[model]\ninit = \"demo_tiny\"\n[data]\n\
             source = { kind = \"jsonl\", path = \"problems.jsonl\", task = \"arithmetic\" }\n\
             template = { kind = \"format\", format = \"Q:{prompt}=\" }\n\
             [rollout]\nprompts_per_step = 2\ngroup_size = 2\nmax_new_tokens = 4\n\
             [output]\nprogress = false\n";
        // The same config beside each file: its relative data path resolves to that file.
        let (good_cfg, bad_cfg) = (good.join("fault.toml"), bad.join("fault.toml"));
        std::fs::write(&good_cfg, text).unwrap();
        std::fs::write(&bad_cfg, text).unwrap();
        let run = dir.join("run");
        let bin = env!("CARGO_BIN_EXE_aha");
        let started = Instant::now();
        let mut pre = vec!["-np", "1", bin, "train", s(&good_cfg), "--run-dir", s(&run)];
        pre.extend([
            ":",
            "-np",
            "1",
            bin,
            "train",
            s(&bad_cfg),
            "--run-dir",
            s(&run),
        ]);
        let out = launcher(&pre, &[]).output().unwrap();
        let took = started.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains("error on rank 1 of 2"), "{err}");
        assert!(err.contains("problems.jsonl:2"), "{err}");
        assert!(took < Duration::from_secs(60), "{took:?}");
        assert!(!run.join("checkpoints").exists());
    }

    /// The process of `rank` whose command line names `marker`.
    fn rank_pid(rank: usize, marker: &str) -> Option<u32> {
        let want = format!("OMPI_COMM_WORLD_RANK={rank}");
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let env = std::fs::read(e.path().join("environ")).ok()?;
            let has = |hay: &[u8], needle: &str| {
                hay.split(|&b| b == 0)
                    .any(|part| String::from_utf8_lossy(part).contains(needle))
            };
            let is_aha = cmd.split(|&b| b == 0).next()? == env!("CARGO_BIN_EXE_aha").as_bytes();
            (is_aha && has(&cmd, marker) && has(&env, &want)).then_some(pid)
        })
    }

    /// Rank 1 is killed mid-run: mpirun ends the job within seconds naming the rank, every
    /// checkpoint on disk is complete, and `--resume` (here on one process) finishes the run.
    #[test]
    fn a_killed_rank_ends_the_job_and_the_run_resumes() {
        let dir = common::scratch("mpi-kill");
        let cfg = grpo_config(&dir, "init = \"demo_tiny\"", 400);
        let run = dir.join("run");
        let args = ["train", s(&cfg), "--run-dir", s(&run)];
        let child = launcher(&["-np", "2", env!("CARGO_BIN_EXE_aha")], &args)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !run.join("checkpoints/step_000002").is_dir() {
            assert!(Instant::now() < deadline, "no checkpoint after 120 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        let pid = rank_pid(1, s(&run)).expect("rank 1's process");
        let killed = Command::new("kill").args(["-9", &pid.to_string()]).status();
        assert!(killed.unwrap().success());
        let t = Instant::now();
        let out = child.wait_with_output().unwrap();
        let took = t.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            took < Duration::from_secs(30),
            "job ended {took:?} after the kill"
        );
        assert!(err.contains("rank 1"), "{err}");
        let metrics = jsonl(&run.join("metrics.jsonl"));
        let done = metrics.len();
        assert!(done < 400, "the job should have stopped early");
        // Every step_* directory is a complete checkpoint.
        let mut newest = 0;
        for e in std::fs::read_dir(run.join("checkpoints"))
            .unwrap()
            .flatten()
        {
            let name = e.file_name().into_string().unwrap();
            if let Some(step) = name.strip_prefix("step_") {
                assert!(e.path().join("trainer_state.json").is_file(), "{name}");
                assert!(e.path().join("model.safetensors").is_file(), "{name}");
                newest = newest.max(step.parse::<usize>().unwrap());
            }
        }
        assert!(newest >= 2);
        // Resume on one process to two steps past the newest checkpoint.
        let target = (newest + 2).to_string();
        let set = format!("steps={target}");
        let resume = [
            "train",
            s(&cfg),
            "--run-dir",
            s(&run),
            "--resume",
            "--set",
            &set,
        ];
        ok(mpirun(1, &resume), "resume after the kill");
        let steps: Vec<u64> = jsonl(&run.join("metrics.jsonl"))
            .iter()
            .map(|m| m["step"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, (1..=newest as u64 + 2).collect::<Vec<_>>());
    }
}
