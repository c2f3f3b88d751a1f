//! The row kernel in plain Rust: one dot product per output, 8 independent sums (vectorisable,
//! fixed order), for CPUs without AVX2.

use super::{weight_at, weight_row, Dims};

/// Columns j0..j1 of y (M, N) = x (M, K) · w (N, K)ᵀ; w is f32, or bf16 when `BF16`.
///
/// # Safety
/// x holds M·K f32, w N·K weights of the stated type, y M·N f32 of which no other thread writes
/// columns j0..j1.
pub(super) unsafe fn block<const BF16: bool>(x: *const f32, w: *const u8, y: *mut f32, d: Dims) {
    for i in 0..d.m {
        let xr = x.add(i * d.k);
        for j in d.j0..d.j1 {
            *y.add(i * d.n + j) = dot::<BF16>(xr, weight_row::<BF16>(w, j, d.k), d.k);
        }
    }
}

/// Dot product of k elements of an f32 row and a weight row.
///
/// # Safety
/// Both rows hold k elements.
unsafe fn dot<const BF16: bool>(x: *const f32, w: *const u8, k: usize) -> f32 {
    let mut acc = [0f32; 8];
    let k8 = k / 8 * 8;
    let mut p = 0;
    while p < k8 {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += *x.add(p + l) * weight_at::<BF16>(w, p + l);
        }
        p += 8;
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for q in k8..k {
        s += *x.add(q) * weight_at::<BF16>(w, q);
    }
    s
}
