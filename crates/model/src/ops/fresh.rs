//! New output buffers that the kernels fill piece by piece on rayon's workers.
//!
//! Zeroing a multi-MB output in its own pass and then filling it sends every cache line through
//! memory twice (the zero passes were 6% of a training step's CPU samples on the reference
//! shape). Here each task zeroes its own piece right before filling it, while the piece sits in
//! its core's cache, so the fill's writes hit what the zeroing just brought in.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use super::cpu;

/// A vector of `n` f32 under construction: hand out its pieces with [`Fresh::pieces`], zero each
/// in the task that fills it ([`Piece::zeroed`]), then [`Fresh::finish`].
pub(crate) struct Fresh {
    v: Vec<f32>,
    n: usize,
    /// Elements zeroed so far: `finish` checks that every piece was initialised.
    zeroed: AtomicUsize,
}

/// One piece of a [`Fresh`] vector, not yet initialised.
pub(crate) struct Piece<'a> {
    raw: &'a mut [MaybeUninit<f32>],
    zeroed: &'a AtomicUsize,
}

impl<'a> Piece<'a> {
    /// The piece, zeroed.
    pub(crate) fn zeroed(self) -> &'a mut [f32] {
        self.raw.fill(MaybeUninit::new(0.0));
        self.zeroed.fetch_add(self.raw.len(), Ordering::Relaxed);
        // SAFETY: every element was just written; MaybeUninit<f32> has f32's layout.
        unsafe { &mut *(self.raw as *mut [MaybeUninit<f32>] as *mut [f32]) }
    }
}

impl Fresh {
    pub(crate) fn new(n: usize) -> Self {
        Fresh {
            v: Vec::with_capacity(n),
            n,
            zeroed: AtomicUsize::new(0),
        }
    }

    /// Consecutive pieces of `len` elements (the last may be shorter), for rayon.
    pub(crate) fn pieces(&mut self, len: usize) -> impl IndexedParallelIterator<Item = Piece<'_>> {
        let zeroed = &self.zeroed;
        self.v.spare_capacity_mut()[..self.n]
            .par_chunks_mut(len.max(1))
            .map(move |raw| Piece { raw, zeroed })
    }

    /// Pieces between consecutive `bounds` (0 first, n last), for rayon.
    pub(crate) fn pieces_between(
        &mut self,
        bounds: &[usize],
    ) -> impl IndexedParallelIterator<Item = Piece<'_>> {
        assert!(bounds.first() == Some(&0) && bounds.last() == Some(&self.n));
        let zeroed = &self.zeroed;
        let mut rest = &mut self.v.spare_capacity_mut()[..self.n];
        let mut raws = Vec::with_capacity(bounds.len() - 1);
        for w in bounds.windows(2) {
            let (raw, tail) = std::mem::take(&mut rest).split_at_mut(w[1] - w[0]);
            raws.push(raw);
            rest = tail;
        }
        raws.into_par_iter().map(move |raw| Piece { raw, zeroed })
    }

    /// The filled vector. Panics if a piece was never zeroed (a kernel's loop that skipped one).
    pub(crate) fn finish(mut self) -> Vec<f32> {
        let zeroed = self.zeroed.load(Ordering::Acquire);
        assert_eq!(zeroed, self.n, "an output piece was never initialised");
        // SAFETY: the pieces partition the first n elements and each was written once (a Piece
        // is consumed by `zeroed`), so all n are initialised.
        unsafe { self.v.set_len(self.n) };
        self.v
    }
}

/// A new vector of `n` f32 filled row by row: `f(row index, row)` gets each row of `row`
/// elements zeroed, rows split across rayon tasks when there is enough work.
pub(crate) fn rows_from(n: usize, row: usize, f: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    if n < cpu::PAR_MIN_ELEMS || row == 0 {
        let mut v = vec![0f32; n];
        cpu::for_each_row(&mut v, row, f);
        return v;
    }
    let per = cpu::rows_per_task(row);
    let mut out = Fresh::new(n);
    out.pieces(per * row).enumerate().for_each(|(c, piece)| {
        for (i, r) in piece.zeroed().chunks_mut(row).enumerate() {
            f(c * per + i, r)
        }
    });
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_filled_in_place_and_in_order() {
        for n in [10, 100_000] {
            let v = rows_from(n, 7, |i, r| r.iter_mut().for_each(|x| *x += i as f32));
            assert_eq!(v.len(), n);
            assert!(v.iter().enumerate().all(|(k, &x)| x == (k / 7) as f32));
        }
    }

    #[test]
    fn pieces_between_bounds_cover_the_vector() {
        let mut f = Fresh::new(10);
        f.pieces_between(&[0, 3, 3, 10])
            .enumerate()
            .for_each(|(i, p)| p.zeroed().iter_mut().for_each(|x| *x = i as f32));
        assert_eq!(f.finish(), [0., 0., 0., 2., 2., 2., 2., 2., 2., 2.]);
    }

    #[test]
    #[should_panic(expected = "never initialised")]
    fn a_skipped_piece_is_caught() {
        let mut f = Fresh::new(100);
        f.pieces(10).take(9).for_each(|p| {
            p.zeroed();
        });
        f.finish();
    }
}
