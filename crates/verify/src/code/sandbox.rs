//! One run of an untrusted Python program under bubblewrap, with limits, and nothing left behind.
//!
//! The chain is `aha → setpriv → bwrap → python3`. `setpriv` drops to an unprivileged host uid
//! first because RLIMIT_NPROC never binds a process whose host uid is root, and bwrap's own
//! `--uid` only changes the uid *inside* its user namespace (measured in issue 12: a fork bomb
//! under a limit of 30 made 200 children as root, 28 after the drop). Each parallel slot gets its
//! own uid: the process count is per host uid, so a fork bomb in one slot
//! would otherwise make bwrap fail to start in every other slot (and the uids are claimed
//! host-wide, `uids.rs`, so two aha processes do not share them either).
//!
//! bwrap then unshares every namespace (user, PID, network with not even loopback up, IPC, UTS,
//! cgroup), mounts `/usr` (and the `/bin`, `/lib*` links into it) read-only, a fresh `/proc` and
//! `/dev`, a size-capped private tmpfs `/tmp` as the working directory, and clears the
//! environment. Nothing of the host's `/etc`, `$HOME`, the run directory or aha's environment is
//! visible. The rlimits are set in the forked child before `exec`, so they hold for setpriv,
//! bwrap and the program alike.
//!
//! The program runs as the PID 1 of its namespace (`--as-pid-1`), bwrap's monitor as its
//! parent, itself our child and the leader of its own process group. When the program exits the
//! kernel kills whatever it left in the namespace and bwrap reaps it and exits. On a timeout or
//! too much output the program is killed first (so the namespace goes down and nothing is
//! orphaned), then the group; bwrap's `--die-with-parent` covers aha itself dying. Every run
//! ends with a sweep of `/proc` that kills anything still owned by the slot's uid, so
//! [`Sandbox::run`] returns only when no process of the run is left.
//!
//! This file does not know about tests, completions or rewards (see `runner.rs`).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::uids::{claim, ClaimedUids};
use super::SandboxError;

/// Longest program accepted: it travels as one `argv` string, which Linux caps at 128 KiB.
pub const MAX_PROGRAM_BYTES: usize = 100_000;

/// Resource limits for one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Wall-clock time from spawn to kill.
    pub wall: Duration,
    /// CPU seconds per process (RLIMIT_CPU, soft = hard: SIGKILL at the limit, since the
    /// program is its namespace's PID 1 and so ignores SIGXCPU).
    pub cpu_s: u64,
    /// Address space per process (RLIMIT_AS), in MiB.
    pub memory_mb: u64,
    /// Processes of the slot's uid, bwrap's two included (RLIMIT_NPROC).
    pub processes: u64,
    /// Bytes of stdout and stderr together read before the run is killed.
    pub output_bytes: usize,
    /// Largest file (RLIMIT_FSIZE) and size of the private `/tmp`, in MiB.
    pub disk_mb: u64,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Exit code as bwrap reports it (128 + n when the program died of signal n).
    Exited(i32),
    /// The sandbox itself was killed by a signal (normally only by us).
    Signaled(i32),
    /// Still running at the wall-clock limit: killed.
    TimedOut,
    /// Wrote more than `output_bytes`: killed.
    OutputLimit,
}

/// What one run produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Execution {
    pub status: Status,
    pub stdout: Vec<u8>,
    /// The first bytes of stderr (at most 4 KiB), for reading a traceback.
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

impl Execution {
    /// Exited with status 0.
    pub fn success(&self) -> bool {
        self.status == Status::Exited(0)
    }
}

const STDERR_KEPT: usize = 4096;

/// A configured sandbox: resolved tool paths, limits and the host uids of its slots, held for
/// its life. Share it between threads by reference.
#[derive(Debug)]
pub struct Sandbox {
    setpriv: PathBuf,
    bwrap: PathBuf,
    python: String,
    limits: Limits,
    slots: ClaimedUids,
}

impl Sandbox {
    /// Finds `setpriv` and `bwrap`, checks that aha may change uid, and runs one trivial program
    /// so that a host where the sandbox cannot work fails here, with bwrap's own message, rather
    /// than as a wrong answer on every completion. `python` is looked up inside the sandbox
    /// (`PATH=/usr/bin:/bin`). Each of the `slots` slots claims its own host uid, the first free
    /// ones at or above `uid_base` (see `uids.rs`).
    pub fn new(
        limits: Limits,
        python: &str,
        uid_base: u32,
        slots: u32,
    ) -> Result<Sandbox, SandboxError> {
        let setpriv = find_tool("setpriv", "util-linux")?;
        let bwrap = find_tool("bwrap", "bubblewrap")?;
        if uid_base == 0 || u64::from(uid_base) + u64::from(slots) > i32::MAX as u64 {
            return Err(SandboxError::Config(format!(
                "uid_base {uid_base} with {slots} slots must stay within 1..{}",
                i32::MAX
            )));
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(SandboxError::NotRoot);
        }
        let sandbox = Sandbox {
            setpriv,
            bwrap,
            python: python.to_string(),
            limits,
            slots: claim(uid_base, slots.max(1))?,
        };
        let probe = sandbox.run(0, "print(6 * 7)", b"")?;
        if !probe.success() || probe.stdout != b"42\n" {
            return Err(SandboxError::Probe {
                status: format!("{:?}", probe.status),
                stderr: String::from_utf8_lossy(&probe.stderr).trim().to_string(),
            });
        }
        Ok(sandbox)
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The host uid slot `slot` runs as.
    pub fn uid(&self, slot: usize) -> u32 {
        self.slots.uids[slot % self.slots.uids.len()]
    }

    /// Runs `program` with `stdin` as its standard input in slot `slot`. Slots must not be used
    /// by two runs at once. Errors are the host's (cannot fork, cannot read a pipe); whatever
    /// the program does ends in a [`Status`].
    pub fn run(&self, slot: usize, program: &str, stdin: &[u8]) -> Result<Execution, SandboxError> {
        let uid = self.uid(slot);
        let start = Instant::now();
        let mut child = self.spawn(uid, program)?;
        let result = supervise(&mut child, stdin, &self.limits, start);
        if !result.as_ref().is_ok_and(|r| r.0.is_none()) {
            stop(&child);
        }
        // Kill the group while its leader is unreaped, so its pid (the group id) cannot have
        // been reused by an unrelated process.
        // SAFETY: plain syscall on a pid we own and have not reaped.
        unsafe { libc::killpg(child.id() as libc::pid_t, libc::SIGKILL) };
        let waited = child.wait();
        sweep_uid(uid);
        let (status, stdout, stderr) = result?;
        let exit = waited.map_err(SandboxError::Io)?;
        Ok(Execution {
            status: status.unwrap_or_else(|| exit_status(exit)),
            stdout,
            stderr,
            elapsed: start.elapsed(),
        })
    }

    fn spawn(&self, uid: u32, program: &str) -> Result<Child, SandboxError> {
        let uid_s = uid.to_string();
        let mut cmd = Command::new(&self.setpriv);
        cmd.args([
            "--reuid",
            &uid_s,
            "--regid",
            &uid_s,
            "--clear-groups",
            "--nnp",
        ])
        .arg(&self.bwrap)
        .args(bwrap_args(self.limits.disk_mb))
        .args(["--", &self.python, "-I", "-c", program])
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
        let rlimits = rlimits(&self.limits);
        // SAFETY: the closure only calls setrlimit, which is async-signal-safe, on a copied
        // array; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                for (resource, value) in rlimits {
                    let lim = libc::rlimit {
                        rlim_cur: value,
                        rlim_max: value,
                    };
                    if libc::setrlimit(resource, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            })
        };
        cmd.spawn().map_err(SandboxError::Spawn)
    }
}

fn find_tool(name: &str, package: &'static str) -> Result<PathBuf, SandboxError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/bin".into(), "/usr/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or(SandboxError::Missing {
            tool: name.to_string(),
            package,
        })
}

#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

fn rlimits(l: &Limits) -> [(Resource, libc::rlim_t); 7] {
    let mib = 1024 * 1024;
    [
        (libc::RLIMIT_CPU, l.cpu_s.max(1)),
        (libc::RLIMIT_AS, l.memory_mb.saturating_mul(mib)),
        (libc::RLIMIT_NPROC, l.processes),
        (libc::RLIMIT_FSIZE, l.disk_mb.saturating_mul(mib)),
        (libc::RLIMIT_CORE, 0),
        (libc::RLIMIT_NOFILE, 256),
        (libc::RLIMIT_MEMLOCK, 0),
    ]
}

fn bwrap_args(disk_mb: u64) -> Vec<OsString> {
    let mut a: Vec<OsString> = [
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--as-pid-1",
        "--new-session",
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "HOME",
        "/tmp",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    .map(OsString::from)
    .to_vec();
    // Merged-/usr systems have these as links into /usr; older ones as directories.
    for dir in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        match std::fs::read_link(dir) {
            Ok(target) => a.extend(["--symlink".into(), target.into(), dir.into()]),
            Err(_) if Path::new(dir).is_dir() => {
                a.extend(["--ro-bind".into(), dir.into(), dir.into()])
            }
            Err(_) => {}
        }
    }
    let size = disk_mb.saturating_mul(1024 * 1024).to_string();
    a.extend(
        [
            "--ro-bind-try",
            "/etc/ld.so.cache",
            "/etc/ld.so.cache",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--size",
            &size,
            "--tmpfs",
            "/tmp",
            "--remount-ro",
            "/dev",
            "--remount-ro",
            "/",
            "--chdir",
            "/tmp",
        ]
        .map(OsString::from),
    );
    a
}

/// Kills a run that is still going. The program is the PID 1 of its namespace (`--as-pid-1`);
/// killing it first takes the namespace down and lets bwrap reap it and exit, whereas killing
/// bwrap first would orphan it into a zombie that only the host's init reaps.
fn stop(child: &Child) {
    let bwrap = child.id() as i32;
    for pid in processes_of_parent(bwrap) {
        // SAFETY: plain kill syscall on our grandchild, which cannot be reaped (and its pid
        // reused) before its parent, our unreaped child, waits for it.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let give_up = Instant::now() + Duration::from_millis(500);
    while Instant::now() < give_up && !exited_unreaped(child).unwrap_or(true) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Pids of the live children of `parent`.
fn processes_of_parent(parent: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let (state, ppid) = stat_fields(pid)?;
            (ppid == parent && state != 'Z').then_some(pid)
        })
        .collect()
}

/// (state, parent pid) from `/proc/PID/stat`.
fn stat_fields(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may hold spaces and parentheses: split after the last.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

type Supervised = (Option<Status>, Vec<u8>, Vec<u8>);

/// Feeds stdin from a thread and reads stdout and stderr until both close and the child exits,
/// or a limit is hit. `Some(status)` when the run was cut short.
fn supervise(
    child: &mut Child,
    stdin: &[u8],
    limits: &Limits,
    start: Instant,
) -> Result<Supervised, SandboxError> {
    let (Some(mut input), Some(out), Some(err)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(SandboxError::Io(std::io::Error::other(
            "child pipes missing",
        )));
    };
    let pidfd = pidfd_open(child.id());
    std::thread::scope(|s| {
        // A write error means the program closed stdin or died: its business, not ours.
        s.spawn(move || {
            let _ = input.write_all(stdin);
        });
        let result = read_outputs(child, pidfd.as_ref(), out, err, limits, start);
        if !result.as_ref().is_ok_and(|r| r.0.is_none()) {
            // The program may still be alive: unblock the writer, or this scope never ends.
            stop(child);
        }
        result
    })
}

fn read_outputs(
    child: &mut Child,
    pidfd: Option<&OwnedFd>,
    mut out: std::process::ChildStdout,
    mut err: std::process::ChildStderr,
    limits: &Limits,
    start: Instant,
) -> Result<Supervised, SandboxError> {
    let deadline = start + limits.wall;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open, mut exited) = (true, true, false);
    let mut total = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while out_open || err_open || !exited {
        let now = Instant::now();
        if now >= deadline {
            return Ok((Some(Status::TimedOut), stdout, stderr));
        }
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(3);
        let mut watch = |fd: RawFd| {
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
        };
        watch(if out_open { out.as_raw_fd() } else { -1 });
        watch(if err_open { err.as_raw_fd() } else { -1 });
        watch(match (pidfd, exited) {
            (Some(fd), false) => fd.as_raw_fd(),
            _ => -1,
        });
        // Without a pidfd (kernels before 5.3) the exit is polled every 10 ms.
        let cap = if pidfd.is_some() { 1000 } else { 10 };
        let wait_ms = (deadline - now).as_millis().clamp(1, cap) as libc::c_int;
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs; negative fds are ignored.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(SandboxError::Io(e));
        }
        let ready = |i: usize| fds[i].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
        if out_open && ready(0) {
            let n = out.read(&mut buf).map_err(SandboxError::Io)?;
            out_open = n > 0;
            stdout.extend_from_slice(&buf[..n]);
            total += n;
        }
        if err_open && ready(1) {
            let n = err.read(&mut buf).map_err(SandboxError::Io)?;
            err_open = n > 0;
            let keep = n.min(STDERR_KEPT.saturating_sub(stderr.len()));
            stderr.extend_from_slice(&buf[..keep]);
            total += n;
        }
        if total > limits.output_bytes {
            stdout.truncate(limits.output_bytes);
            return Ok((Some(Status::OutputLimit), stdout, stderr));
        }
        if !exited && (pidfd.is_none() || ready(2)) {
            exited = exited_unreaped(child)?;
        }
    }
    Ok((None, stdout, stderr))
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a non-negative return is a fresh fd that we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Whether the child has exited, without reaping it (its pid stays ours until `wait`).
fn exited_unreaped(child: &Child) -> Result<bool, SandboxError> {
    // SAFETY: zeroed siginfo_t is a valid out-parameter for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: valid pointer to `info`; the pid is our unreaped child.
    let rc = unsafe { libc::waitid(libc::P_PID, child.id(), &mut info, flags) };
    if rc != 0 {
        return Err(SandboxError::Io(std::io::Error::last_os_error()));
    }
    // SAFETY: waitid filled `info` (si_pid is 0 when the child has not exited).
    Ok(unsafe { info.si_pid() } != 0)
}

fn exit_status(status: ExitStatus) -> Status {
    match (status.code(), status.signal()) {
        (Some(code), _) => Status::Exited(code),
        (None, Some(sig)) => Status::Signaled(sig),
        (None, None) => Status::Signaled(0),
    }
}

/// Pids of the live (not zombie) processes whose effective uid is `uid`.
pub fn processes_of(uid: u32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let live = e.metadata().ok()?.uid() == uid && stat_fields(pid)?.0 != 'Z';
            live.then_some(pid)
        })
        .collect()
}

/// Kills every process of `uid` until none is left (bounded: a few seconds at most). Only the
/// sandbox runs as these uids, and after its PID 1 dies the kernel is already killing them; this
/// waits for that and catches anything that got out of the way.
fn sweep_uid(uid: u32) {
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_of(uid);
        if left.is_empty() || Instant::now() >= give_up {
            return;
        }
        for pid in left {
            kill_if_owned(pid, uid);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// SIGKILLs `pid` if it is still a process of `uid`. The pidfd pins the process first, so a pid
/// that exited and was reused by someone else's process between the scan and the kill is safe.
fn kill_if_owned(pid: i32, uid: u32) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return;
    }
    // SAFETY: a non-negative return is a fresh fd that we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let owned = std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == uid);
    if owned {
        let null = std::ptr::null::<libc::siginfo_t>();
        // SAFETY: a valid pidfd; a null siginfo is allowed; ESRCH if the process is gone.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                libc::SIGKILL,
                null,
                0,
            )
        };
    }
}
