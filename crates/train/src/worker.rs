//! Running compute on a worker of rayon's global pool.
//!
//! aha's kernels split their loops on rayon. Called from a thread outside the pool, each parallel
//! op queues its job, wakes a worker and sleeps until the job is done: ~20 µs per op, and a
//! decode step calls dozens of them (with one thread, decoding ran no faster on two). Called from
//! a worker, an op starts on that thread at once and the other workers steal what they can.
//!
//! `aha`'s binary runs whole commands on a worker. The engine and the trainers' gradient passes
//! also hop onto one themselves, for library callers and for MPI ranks, whose commands stay on
//! the main thread (MPI is initialised for calls from the main thread only): nothing inside
//! these regions talks to other ranks.

/// `f()` on a rayon worker: in place when the caller is one, else on a worker while the caller
/// blocks.
pub fn on_rayon_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::scope(|_| f())
    }
}

/// Waits for a scoped thread from a rayon worker while running rayon's pending jobs. A plain
/// `join` would hold the worker idle, and when the awaited thread itself waits on rayon (the
/// scorer's parallel loops) and the pool has no other worker (`RAYON_NUM_THREADS=1`, a one-core
/// machine), neither would ever finish.
pub fn join_working<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> std::thread::Result<T> {
    while !handle.is_finished() {
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
    handle.join()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_on_a_worker_from_any_thread() {
        let outside = std::thread::spawn(|| {
            assert!(rayon::current_thread_index().is_none());
            on_rayon_worker(|| rayon::current_thread_index().is_some())
        });
        assert!(outside.join().unwrap());
        // From a worker it runs in place, on the same worker.
        let (before, inside) = on_rayon_worker(|| {
            let before = rayon::current_thread_index();
            (before, on_rayon_worker(rayon::current_thread_index))
        });
        assert!(before.is_some());
        assert_eq!(before, inside);
    }
}
