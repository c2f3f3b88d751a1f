//! [`Collective`] over MPI's world communicator, through the C wrappers in `mpi_shim.c`
//! (built by `build.rs` with `mpicc`). MPI is initialised once per process by [`Mpi::init`]
//! and finalised when the value is dropped.

use std::ffi::{c_char, c_int, c_void};

use super::Collective;
use crate::{Error, Result};

extern "C" {
    fn aha_mpi_init() -> c_int;
    fn aha_mpi_rank(rank: *mut c_int) -> c_int;
    fn aha_mpi_size(size: *mut c_int) -> c_int;
    fn aha_mpi_sum_f32(buf: *mut f32, n: usize) -> c_int;
    fn aha_mpi_sum_f64(buf: *mut f64, n: usize) -> c_int;
    fn aha_mpi_max_f64(buf: *mut f64, n: usize) -> c_int;
    fn aha_mpi_bcast(buf: *mut c_void, n: usize, root: c_int) -> c_int;
    fn aha_mpi_bcast_u64(value: *mut u64, root: c_int) -> c_int;
    fn aha_mpi_barrier() -> c_int;
    fn aha_mpi_abort(code: c_int);
    fn aha_mpi_finalize() -> c_int;
    fn aha_mpi_error_string(code: c_int, out: *mut c_char, cap: c_int);
}

/// Membership of `MPI_COMM_WORLD`. Only one exists per process (MPI can be initialised once);
/// calls must come from the thread that created it.
pub struct Mpi {
    rank: usize,
    size: usize,
}

fn check(call: &str, rc: c_int) -> Result<()> {
    if rc == 0 {
        return Ok(());
    }
    let mut text = [0 as c_char; 512];
    // SAFETY: the shim writes at most `cap` bytes including the terminating NUL.
    unsafe { aha_mpi_error_string(rc, text.as_mut_ptr(), text.len() as c_int) };
    let bytes: Vec<u8> = text
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Err(Error::Collective(format!(
        "{call} failed (MPI error {rc}): {}",
        String::from_utf8_lossy(&bytes)
    )))
}

impl Mpi {
    /// Initialises MPI (once per process) and reads this process's rank and the job's size.
    pub fn init() -> Result<Self> {
        // SAFETY: plain calls into the MPI library; the out-pointers are live locals.
        unsafe {
            check("MPI_Init_thread", aha_mpi_init())?;
            let (mut rank, mut size) = (0 as c_int, 0 as c_int);
            check("MPI_Comm_rank", aha_mpi_rank(&mut rank))?;
            check("MPI_Comm_size", aha_mpi_size(&mut size))?;
            Ok(Self {
                rank: rank.max(0) as usize,
                size: size.max(1) as usize,
            })
        }
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        // SAFETY: the shim reads and writes exactly `buf.len()` elements.
        check("MPI_Allreduce (sum, f32)", unsafe {
            aha_mpi_sum_f32(buf.as_mut_ptr(), buf.len())
        })
    }
    fn sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        // SAFETY: as above.
        check("MPI_Allreduce (sum, f64)", unsafe {
            aha_mpi_sum_f64(buf.as_mut_ptr(), buf.len())
        })
    }
    fn max_f64(&self, buf: &mut [f64]) -> Result<()> {
        // SAFETY: as above.
        check("MPI_Allreduce (max, f64)", unsafe {
            aha_mpi_max_f64(buf.as_mut_ptr(), buf.len())
        })
    }
    fn broadcast(&self, root: usize, bytes: &mut Vec<u8>) -> Result<()> {
        let mut len = bytes.len() as u64;
        // SAFETY: `len` is a live u64; then the buffer is resized to the root's length before
        // the shim writes that many bytes into it.
        unsafe {
            check(
                "MPI_Bcast (length)",
                aha_mpi_bcast_u64(&mut len, root as c_int),
            )?;
            bytes.resize(len as usize, 0);
            check(
                "MPI_Bcast",
                aha_mpi_bcast(bytes.as_mut_ptr().cast(), bytes.len(), root as c_int),
            )
        }
    }
    fn barrier(&self) -> Result<()> {
        // SAFETY: no arguments.
        check("MPI_Barrier", unsafe { aha_mpi_barrier() })
    }
    fn abort(&self, code: i32) -> ! {
        // SAFETY: MPI_Abort ends every process of the job, this one included.
        unsafe { aha_mpi_abort(code) };
        std::process::exit(code)
    }
}

impl Drop for Mpi {
    fn drop(&mut self) {
        // SAFETY: MPI was initialised by `init`; nothing calls MPI after this.
        unsafe { aha_mpi_finalize() };
    }
}
