//! Which collective this process belongs to, from its launcher's environment.
//!
//! - No launcher: one process ([`Single`]), as always.
//! - `mpirun`/`mpiexec` (OpenMPI's `OMPI_COMM_WORLD_SIZE`, MPICH/Hydra's `PMI_SIZE`, PMIx's
//!   `PMIX_RANK`) or a Slurm step of several tasks (`srun`, `SLURM_STEP_NUM_TASKS`): MPI, when
//!   built with the `mpi` feature; without it, an error rather than N independent copies of
//!   the same run writing into one directory.
//! - Under Slurm the size must equal `SLURM_NTASKS`: `srun` without `--mpi=pmix` starts every
//!   task as an MPI singleton of size 1, which would again be N independent runs.

use std::sync::Arc;

use super::{Collective, Single};
use crate::{Error, Result};

/// The number of processes a launcher says it started, when one did.
fn launched_size() -> Option<usize> {
    let var = |k: &str| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
    };
    var("OMPI_COMM_WORLD_SIZE")
        .or_else(|| var("PMI_SIZE"))
        .or_else(|| var("SLURM_STEP_NUM_TASKS"))
        .or_else(|| std::env::var_os("PMIX_RANK").map(|_| 0))
}

/// Whether an MPI launcher (or a Slurm step) started this process, whatever the job's size.
pub fn under_launcher() -> bool {
    launched_size().is_some()
}

/// The collective of this process: `Single` without a launcher, MPI under one.
pub fn launch() -> Result<Arc<dyn Collective>> {
    let Some(launched) = launched_size() else {
        return Ok(Arc::new(Single));
    };
    from_launcher(launched)
}

#[cfg(feature = "mpi")]
fn from_launcher(_launched: usize) -> Result<Arc<dyn Collective>> {
    let mpi = super::Mpi::init()?;
    let slurm = std::env::var("SLURM_NTASKS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok());
    if let Some(n) = slurm {
        if std::env::var_os("SLURM_STEP_ID").is_some() && n != mpi.size() {
            return Err(Error::Collective(format!(
                "Slurm started {n} tasks (SLURM_NTASKS) but MPI sees a job of {} process(es): \
                 launch with `srun --mpi=pmix` so the tasks join one job",
                mpi.size()
            )));
        }
    }
    Ok(Arc::new(mpi))
}

#[cfg(not(feature = "mpi"))]
fn from_launcher(launched: usize) -> Result<Arc<dyn Collective>> {
    if launched == 1 {
        return Ok(Arc::new(Single));
    }
    Err(Error::Collective(
        "started by an MPI launcher (mpirun, mpiexec or srun), but this aha was built without \
         MPI: rebuild with `cargo build --release --features mpi`, or run it without the \
         launcher"
            .into(),
    ))
}
