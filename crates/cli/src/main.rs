//! The `aha` binary: parse the command line, run one command, print the error chain.

use clap::Parser;

// glibc's malloc hands candle's large buffers back to the kernel after every op, which cost ~30%
// of step time and 2-3x step-time swings; mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod args;
mod commands;
mod progress;

/// mimalloc (v3) hands freed memory back to the OS after 10 ms. candle frees and reallocates
/// multi-MiB buffers at every op, so each training step faulted them in and zeroed them again
/// (70k page faults and ~17% of a step's time on the bench). A three-second delay keeps what the
/// next op or step reuses mapped (1 s was not enough: the reference GRPO step's update swung
/// from 0.93 to 1.3 s), yet still returns what a long phase is done with: never purging left a
/// 0.5B model's GRPO step at 13.4 GB peak RSS (12.3 GB with the delay), its activations' pages
/// kept while the optimizer state was first written.
fn keep_freed_memory() {
    // `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (the Rust bindings name no constant).
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return; // the user's choice, read by mimalloc itself
    }
    // SAFETY: called first thing in main, before any other thread exists (the function is not
    // thread safe); the option only changes when freed pages are returned to the OS.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 3000) };
}

/// candle runs elementwise ops on its own thread pool whose caller spins until every worker is
/// done. When the cores are shared (other processes, or our own rayon work), each op waits for a
/// descheduled worker: on a loaded 2-core machine the training step took 2x the CPU time and 2x
/// the wall time (bench train-small: 1.3 vs 0.65 CPU s/step). The heavy work — matmuls and aha's
/// fused ops — runs on rayon, which sleeps instead of spinning, so elementwise ops stay on the
/// calling thread unless the user sets CANDLE_NUM_THREADS.
fn serial_candle_elementwise() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Edition 2021, and no other thread exists yet.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// Builds rayon's global pool with 16 MiB worker stacks, so a whole command can run on a worker
/// ([`aha_train::worker`] says why it should) rather than on main's 8 MiB. False if the pool
/// already existed (with rayon's default 2 MiB stacks).
fn big_worker_stacks() -> bool {
    rayon::ThreadPoolBuilder::new()
        .stack_size(16 << 20)
        .build_global()
        .is_ok()
}

fn main() {
    keep_freed_memory();
    serial_candle_elementwise();
    let cli = commands::Cli::parse();
    // Under mpirun/srun this joins the job (feature `mpi`); otherwise one process.
    let world = match aha_train::collective::launch() {
        Ok(w) => w,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::exit(1);
        }
    };
    let big_stacks = big_worker_stacks();
    let result = if aha_train::collective::under_launcher() || !big_stacks {
        // MPI is initialised for calls from the main thread only (a job of one rank included):
        // the command stays there, and its generation and gradient passes hop onto workers.
        commands::run(cli, world.clone())
    } else {
        aha_train::worker::on_rayon_worker(|| commands::run(cli, world.clone()))
    };
    if let Err(err) = result {
        if world.size() > 1 {
            // The other ranks would wait for this one in their next collective: end the job.
            eprintln!(
                "error on rank {} of {}: {err:#}",
                world.rank(),
                world.size()
            );
            world.abort(1);
        }
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
