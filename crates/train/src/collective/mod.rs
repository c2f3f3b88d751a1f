//! Collectives across the processes of a data-parallel job, behind one small trait.
//!
//! A job is `size` ranks that each hold the whole model and a share of the step's work. The
//! trainers meet at three places — gradients, the loss normaliser's counts, metrics — and
//! everything they exchange goes through [`Collective`]: in-place sums, a max, byte broadcasts
//! and a barrier. [`Single`] is the one-process job (every call returns at once, nothing is
//! copied); `Mpi` (feature `mpi`) runs the same calls over MPI. An NCCL implementation would sit
//! beside them with MPI bootstrapping its id (see docs/scaling.md).
//!
//! This module also holds what the trainers build on the trait: contiguous shards of a
//! batch, the bucketed gradient sum, the replica checksum and gathering results on rank 0.
//! [`launch`] picks the implementation from the process's launcher.

mod launch;
#[cfg(feature = "mpi")]
mod mpi;
mod replicas;
mod single;

use std::ops::Range;
use std::path::{Path, PathBuf};

pub use launch::{launch, under_launcher};
#[cfg(feature = "mpi")]
pub use mpi::Mpi;
pub use replicas::{check_replicas, weights_checksum};
pub use single::Single;

use candle_core::{DType, Tensor, Var};
use std::collections::BTreeMap;

use crate::optim::Gradients;
use crate::run_dir::RunDir;
use crate::{Error, Result};

/// The operations a data-parallel job needs. Every rank must make the same calls in the same
/// order with the same lengths (MPI's rule); the trainers are written so that they do.
pub trait Collective: Send + Sync {
    /// This process's index, `0..size`.
    fn rank(&self) -> usize;
    /// Processes in the job.
    fn size(&self) -> usize;
    /// Element-wise sum over ranks, written back into `buf` on every rank.
    fn sum_f32(&self, buf: &mut [f32]) -> Result<()>;
    /// Element-wise sum over ranks (counts and metric sums, exact for integers below 2^53).
    fn sum_f64(&self, buf: &mut [f64]) -> Result<()>;
    /// Element-wise max over ranks.
    fn max_f64(&self, buf: &mut [f64]) -> Result<()>;
    /// Replaces every rank's `bytes` by `root`'s (lengths may differ before the call).
    fn broadcast(&self, root: usize, bytes: &mut Vec<u8>) -> Result<()>;
    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<()>;
    /// Ends the whole job at once: every rank's process exits with `code`. The caller prints
    /// the reason first; this is how one rank's error stops the others, which would otherwise
    /// wait forever in their next collective.
    fn abort(&self, code: i32) -> !;
}

/// The default: one process.
pub fn single() -> std::sync::Arc<dyn Collective> {
    std::sync::Arc::new(Single)
}

/// The contiguous share of `n` items that `rank` of `size` takes: sizes differ by at most one
/// and the shards, in rank order, are `0..n`.
pub fn shard(n: usize, rank: usize, size: usize) -> Range<usize> {
    let size = size.max(1);
    (n * rank / size)..(n * (rank + 1) / size)
}

/// Floats per gradient bucket: large enough that per-call latency vanishes, small enough that
/// the staging copy stays a few MiB.
const BUCKET: usize = 1 << 22;

/// Sums `grads` over ranks, bucketed: consecutive parameters are packed into one f32 buffer
/// of up to [`BUCKET`] floats, summed in place, and unpacked. A parameter missing from `grads`
/// (this rank's share of the minibatch was empty) counts as zeros. One rank returns `grads`
/// untouched.
///
/// Not overlapped with the backward: candle's `backward` hands back every gradient at once,
/// so there is no per-layer hook to start a bucket from.
pub fn sum_gradients(
    comm: &dyn Collective,
    vars: &BTreeMap<String, Var>,
    mut grads: Gradients,
) -> Result<Gradients> {
    if comm.size() == 1 {
        return Ok(grads);
    }
    let names: Vec<&String> = vars.keys().collect();
    let mut out = Gradients::new();
    let mut start = 0;
    while start < names.len() {
        // Parameters [start, end) form one bucket (a parameter larger than a bucket alone).
        let mut end = start;
        let mut len = 0;
        while end < names.len() {
            let n = vars[names[end]].as_tensor().elem_count();
            if end > start && len + n > BUCKET {
                break;
            }
            len += n;
            end += 1;
        }
        let mut buf = Vec::with_capacity(len);
        for name in &names[start..end] {
            match grads.remove(*name) {
                Some(g) => buf.extend(g.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?),
                None => buf.resize(buf.len() + vars[*name].as_tensor().elem_count(), 0.0),
            }
        }
        comm.sum_f32(&mut buf)?;
        let mut at = 0;
        for name in &names[start..end] {
            let t = vars[*name].as_tensor();
            let n = t.elem_count();
            let g = Tensor::from_slice(&buf[at..at + n], t.shape(), t.device())?;
            out.insert((*name).clone(), g.to_dtype(t.dtype())?);
            at += n;
        }
        start = end;
    }
    Ok(out)
}

/// Every rank's `bytes`, in rank order, on rank 0 (`None` elsewhere). One broadcast per rank:
/// meant for end-of-command results, not for the step's hot path.
pub fn gather_to_root(comm: &dyn Collective, bytes: Vec<u8>) -> Result<Option<Vec<Vec<u8>>>> {
    if comm.size() == 1 {
        return Ok(Some(vec![bytes]));
    }
    let mut all = Vec::with_capacity(comm.size());
    let mut mine = Some(bytes);
    for root in 0..comm.size() {
        let mut buf = match root == comm.rank() {
            true => mine.take().unwrap_or_default(),
            false => Vec::new(),
        };
        comm.broadcast(root, &mut buf)?;
        if comm.rank() == 0 {
            all.push(buf);
        }
    }
    Ok((comm.rank() == 0).then_some(all))
}

/// Whether `flag` is set on any rank (every rank gets the same answer).
pub fn any_rank(comm: &dyn Collective, flag: bool) -> Result<bool> {
    let mut v = [f64::from(u8::from(flag))];
    comm.max_f64(&mut v)?;
    Ok(v[0] > 0.0)
}

/// [`RunDir::check`] for a job: rank 0 checks the directory (and writes its probe), then tells
/// the others which checkpoint it resumes from, so every rank restores the same one. The other
/// ranks touch nothing; they need the directory only to read that checkpoint (a filesystem
/// shared by the ranks). An error on rank 0 ends the job there, before any collective step.
pub fn check_run_dir(
    comm: &dyn Collective,
    dir: &Path,
    resume: bool,
    config_toml: &str,
) -> Result<RunDir> {
    if comm.size() == 1 {
        return RunDir::check(dir, resume, config_toml);
    }
    let mut run = None;
    let mut bytes = Vec::new();
    if comm.rank() == 0 {
        let r = RunDir::check(dir, resume, config_toml)?;
        bytes = serde_json::to_vec(&r.resume_from).map_err(|e| Error::Collective(e.to_string()))?;
        run = Some(r);
    }
    comm.broadcast(0, &mut bytes)?;
    if let Some(r) = run {
        return Ok(r);
    }
    let resume_from: Option<(usize, PathBuf)> =
        serde_json::from_slice(&bytes).map_err(|e| Error::Collective(e.to_string()))?;
    Ok(RunDir {
        dir: dir.into(),
        resume_from,
    })
}

/// `gather_to_root` for serde values: rank 0 gets every rank's `value` in rank order.
pub fn gather_json<T>(comm: &dyn Collective, value: &T) -> Result<Option<Vec<T>>>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let bytes = serde_json::to_vec(value).map_err(|e| Error::Collective(e.to_string()))?;
    let Some(all) = gather_to_root(comm, bytes)? else {
        return Ok(None);
    };
    all.iter()
        .map(|b| serde_json::from_slice(b).map_err(|e| Error::Collective(e.to_string())))
        .collect::<Result<Vec<T>>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn shards_cover_the_batch_in_order() {
        for n in 0..12 {
            for size in 1..5 {
                let all: Vec<usize> = (0..size).flat_map(|r| shard(n, r, size)).collect();
                assert_eq!(all, (0..n).collect::<Vec<_>>(), "n {n} size {size}");
                let lens: Vec<usize> = (0..size).map(|r| shard(n, r, size).len()).collect();
                let (lo, hi) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
                assert!(hi - lo <= 1, "{lens:?}");
            }
        }
    }

    #[test]
    fn one_rank_keeps_gradients_and_gathers_its_own_bytes() {
        let dev = Device::Cpu;
        let w = Var::new(&[1.0f32, 2.0], &dev).unwrap();
        let vars = BTreeMap::from([("w".to_string(), w)]);
        let g = BTreeMap::from([("w".to_string(), Tensor::new(&[3.0f32, 4.0], &dev).unwrap())]);
        let out = sum_gradients(&Single, &vars, g).unwrap();
        assert_eq!(out["w"].to_vec1::<f32>().unwrap(), [3.0, 4.0]);
        let all = gather_json(&Single, &vec![1u32, 2]).unwrap().unwrap();
        assert_eq!(all, [vec![1, 2]]);
    }
}
