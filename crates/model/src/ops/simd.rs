//! Run a kernel compiled for the best vector instruction set this CPU has.
//!
//! The workspace is built for baseline x86-64 (SSE2), so the binary runs anywhere; the loops of
//! aha's own kernels then vectorise four lanes wide. [`simd_dispatch!`] compiles one
//! body three times, for AVX-512, for AVX2 with FMA and for the baseline, and
//! picks one at run time with [`crate::matmul::Isa::detect`]. The body and everything it inlines
//! (`cpu::exp`, `cpu::dot`, …) are then vectorised sixteen or eight lanes wide. The results are
//! the baseline build's bit for bit: Rust neither contracts `a * b + c` into an FMA nor
//! reassociates sums, and the reductions keep their explicit eight partial sums.

/// `simd_dispatch! { vis fn name(arg: Ty, …) { body } }` defines `name`, whose body is compiled
/// inline three times (AVX-512, AVX2 + FMA, baseline) and run with the best this CPU has.
macro_rules! simd_dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                match $crate::matmul::Isa::detect() {
                    // SAFETY: `detect` found these features on this CPU.
                    $crate::matmul::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    $crate::matmul::Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::matmul::Isa::Portable => {}
                }
            }
            body($($arg),*)
        }
    };
}

pub(crate) use simd_dispatch;

#[cfg(test)]
mod tests {
    use super::super::cpu;

    simd_dispatch! {
        fn kernel(x: &[f32], y: &mut [f32], out: &mut f32) {
            kernel_body(x, y, out)
        }
    }

    /// What aha's kernels do: elementwise exp and products, 8-lane sums and dot products.
    #[inline(always)]
    fn kernel_body(x: &[f32], y: &mut [f32], out: &mut f32) {
        for (y, x) in y.iter_mut().zip(x) {
            *y = x * cpu::exp(-x) / (1.0 + x * x).sqrt();
        }
        *out = cpu::dot(x, y) + cpu::sum(y) * cpu::max(x);
    }

    /// Rust never contracts or reassociates floating point on its own, so the vector builds
    /// compute bit for bit what the baseline build computes: kernels may use the dispatch
    /// without changing a run's numbers.
    #[test]
    fn every_instruction_set_gives_the_baseline_bits() {
        let x: Vec<f32> = (0..1037)
            .map(|i| ((i * 7919) % 2003) as f32 / 97.0 - 9.0)
            .collect();
        let (mut y1, mut y2) = (vec![0f32; x.len()], vec![0f32; x.len()]);
        let (mut o1, mut o2) = (0f32, 0f32);
        kernel(&x, &mut y1, &mut o1);
        kernel_body(&x, &mut y2, &mut o2);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&y1), bits(&y2));
        assert_eq!(o1.to_bits(), o2.to_bits());
    }
}
