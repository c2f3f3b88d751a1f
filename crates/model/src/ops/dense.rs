//! Row-major f32 GEMM on the CPU into fresh buffers, for the kernels' forward and backward.
//!
//! candle's matmul zero-fills its output and then has the GEMM add into it; the GEMM can write
//! the output outright, so here it does, into uninitialised capacity. Operands are described by
//! (pointer, row stride, column stride), which lets a transposed view (`gᵀ` in a weight gradient)
//! be read in place. The `gemm` crate picks AVX-512 or AVX2 at run time (feature `x86-v4`).

/// A matrix operand: `data[r * rs + c * cs]` is element (r, c).
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// A contiguous (rows, cols) matrix.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        View {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a contiguous (rows, cols) matrix, read in place as (cols, rows).
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        View {
            data,
            rs: 1,
            cs: cols,
        }
    }

    /// Whether every element of an (r, c) matrix lies inside `data`.
    fn fits(&self, r: usize, c: usize) -> bool {
        r == 0 || c == 0 || (r - 1) * self.rs + (c - 1) * self.cs < self.data.len()
    }
}

/// Multiply-adds below which splitting one GEMM across threads costs more than it saves.
const PAR_MIN_WORK: usize = 1 << 16;

fn parallelism(threads: usize, work: usize) -> gemm::Parallelism {
    if threads > 1 && work >= PAR_MIN_WORK {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// `a (m, k) · b (k, n)`, plus `init` (m, n) row-major when given, → a new (m, n) row-major
/// vector. `threads` > 1 splits the GEMM on rayon's pool.
pub(crate) fn matmul(
    a: View,
    b: View,
    (m, k, n): (usize, usize, usize),
    init: Option<Vec<f32>>,
    threads: usize,
) -> Vec<f32> {
    assert!(a.fits(m, k) && b.fits(k, n), "gemm operands out of bounds");
    let read_dst = init.is_some();
    let mut y = init.unwrap_or_else(|| Vec::with_capacity(m * n));
    assert!(y.capacity() >= m * n && (!read_dst || y.len() == m * n));
    if k == 0 {
        y.resize(m * n, 0.0);
        return y;
    }
    // SAFETY: the operands cover (m, k) and (k, n) at their strides (asserted above); y has room
    // for m·n elements written row-major and aliases neither input. With `read_dst` false the
    // GEMM writes every element of y without reading it, so y is fully initialised after the call.
    unsafe {
        raw(a, b, (m, k, n), y.as_mut_ptr(), n, read_dst, threads);
        y.set_len(m * n);
    }
    y
}

/// `[a·b₁ | a·b₂]`: two products of one left operand, each (m, n), side by side in a new
/// (m, 2n) row-major buffer (a layer's gate and up projections, without packing their weights).
pub(crate) fn matmul_side_by_side(
    a: View,
    [b1, b2]: [View; 2],
    (m, k, n): (usize, usize, usize),
    threads: usize,
) -> Vec<f32> {
    assert!(
        a.fits(m, k) && b1.fits(k, n) && b2.fits(k, n),
        "gemm operands out of bounds"
    );
    let mut y = Vec::with_capacity(2 * m * n);
    if k == 0 {
        y.resize(2 * m * n, 0.0);
        return y;
    }
    // SAFETY: as in `matmul`; the two calls write the disjoint column ranges [0, n) and [n, 2n)
    // of every row, so together they initialise all 2·m·n elements.
    unsafe {
        raw(a, b1, (m, k, n), y.as_mut_ptr(), 2 * n, false, threads);
        raw(
            a,
            b2,
            (m, k, n),
            y.as_mut_ptr().add(n),
            2 * n,
            false,
            threads,
        );
        y.set_len(2 * m * n);
    }
    y
}

/// `out = a · b`, or `out += a · b` when `accumulate`; out is (m, n) with row stride `out_rs`.
pub(crate) fn matmul_into(
    a: View,
    b: View,
    (m, k, n): (usize, usize, usize),
    out: &mut [f32],
    out_rs: usize,
    accumulate: bool,
) {
    assert!(a.fits(m, k) && b.fits(k, n), "gemm operands out of bounds");
    assert!(m == 0 || n == 0 || (m - 1) * out_rs + n <= out.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out.chunks_mut(out_rs)
                .take(m)
                .for_each(|r| r[..n].fill(0.0));
        }
        return;
    }
    // SAFETY: bounds asserted above; `out` is a unique borrow, so it aliases neither input.
    unsafe { raw(a, b, (m, k, n), out.as_mut_ptr(), out_rs, accumulate, 1) }
}

/// # Safety
/// a and b cover (m, k) and (k, n) at their strides, `dst` has (m, n) elements at row stride
/// `dst_rs` that alias neither input, and k > 0.
unsafe fn raw(
    a: View,
    b: View,
    (m, k, n): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    read_dst: bool,
    threads: usize,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        read_dst,
        a.data.as_ptr(),
        a.cs as isize,
        a.rs as isize,
        b.data.as_ptr(),
        b.cs as isize,
        b.rs as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        parallelism(threads, m * n * k),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                y[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        y
    }

    /// `len` values `((i·mul mod modulus) − modulus/2) / div`: a fixed spread of signs and sizes.
    fn pattern(len: usize, mul: usize, modulus: usize, div: f32) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * mul % modulus) as f32 - (modulus / 2) as f32) / div)
            .collect()
    }

    fn close(x: &[f32], y: &[f32]) -> bool {
        x.len() == y.len()
            && x.iter()
                .zip(y)
                .all(|(a, b)| (a - b).abs() <= 1e-4 * (1.0 + b.abs()))
    }

    #[test]
    fn plain_transposed_and_initialised_products_match_a_naive_loop() {
        let (m, k, n) = (37, 19, 45);
        let a = pattern(m * k, 7, 13, 5.0);
        let b = pattern(k * n, 5, 11, 4.0);
        let want = naive(&a, &b, m, k, n);
        for threads in [1, 2] {
            let y = matmul(
                View::rows(&a, k),
                View::rows(&b, n),
                (m, k, n),
                None,
                threads,
            );
            assert!(close(&y, &want));
        }
        // aᵀ stored as (k, m), read in place.
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let y = matmul(
            View::transposed(&at, m),
            View::rows(&b, n),
            (m, k, n),
            None,
            1,
        );
        assert!(close(&y, &want));
        let ones = vec![1f32; m * n];
        let y = matmul(
            View::rows(&a, k),
            View::rows(&b, n),
            (m, k, n),
            Some(ones),
            2,
        );
        let shifted: Vec<f32> = want.iter().map(|w| w + 1.0).collect();
        assert!(close(&y, &shifted));
    }

    #[test]
    fn side_by_side_products_fill_both_halves_of_each_row() {
        let (m, k, n) = (29, 13, 17);
        let a = pattern(m * k, 3, 7, 2.0);
        let b1 = pattern(k * n, 5, 11, 4.0);
        let b2 = pattern(k * n, 7, 13, 3.0);
        let (w1, w2) = (naive(&a, &b1, m, k, n), naive(&a, &b2, m, k, n));
        for threads in [1, 2] {
            let bs = [View::rows(&b1, n), View::rows(&b2, n)];
            let y = matmul_side_by_side(View::rows(&a, k), bs, (m, k, n), threads);
            let left: Vec<f32> = y.chunks(2 * n).flat_map(|r| r[..n].to_vec()).collect();
            let right: Vec<f32> = y.chunks(2 * n).flat_map(|r| r[n..].to_vec()).collect();
            assert!(close(&left, &w1) && close(&right, &w2));
        }
    }
}
