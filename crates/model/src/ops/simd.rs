//! Run a kernel compiled for the best vector instruction set this CPU has.
//!
//! The workspace is built for baseline x86-64 (SSE2), so the binary runs anywhere; the loops of
//! aha's own kernels then vectorise four lanes wide. [`simd_dispatch!`] compiles one
//! `#[inline(always)]` body three times, for AVX-512, for AVX2 with FMA and for the baseline, and
//! picks one at run time with [`crate::matmul::Isa::detect`]. The body and everything it inlines
//! (`cpu::exp`, `cpu::dot`, …) are then vectorised sixteen or eight lanes wide. Results may differ
//! in the last bits between instruction sets (FMA contraction, wider partial sums) but never
//! between threads or runs on one machine.

/// `simd_dispatch!(vis fn name(arg: Ty, …) => body_fn);` defines `name`, which calls the
/// `#[inline(always)]` function `body_fn` with the same arguments, compiled for the best
/// available instruction set.
macro_rules! simd_dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:path) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) {
                    $body($($arg),*)
                }
                match $crate::matmul::Isa::detect() {
                    // SAFETY: `detect` found these features on this CPU.
                    $crate::matmul::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    $crate::matmul::Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::matmul::Isa::Portable => {}
                }
            }
            $body($($arg),*)
        }
    };
}

pub(crate) use simd_dispatch;
