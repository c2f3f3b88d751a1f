//! The check that data-parallel replicas still hold the same weights. Every rank applies the
//! same update to the same weights, so they stay bit-identical unless something is wrong (a
//! rank on another binary, config or checkpoint, or a non-deterministic kernel); catching it
//! early beats a run whose ranks quietly train different models.

use std::collections::BTreeMap;

use candle_core::{DType, Var};

use super::Collective;
use crate::{Error, Result};

/// A 64-bit FNV-1a hash of every parameter's f32 bits, in name order. One pass over the
/// weights: about a second per billion parameters on one core.
pub fn weights_checksum(vars: &BTreeMap<String, Var>) -> Result<u64> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, var) in vars {
        for b in name.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let values = var
            .as_tensor()
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        for v in values {
            h = (h ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3);
        }
    }
    Ok(h)
}

/// Errors on every rank, naming `when`, if any two ranks' weights differ. The hash travels as
/// its two 32-bit halves (exact in f64): the ranks agree iff the max of each half equals the
/// min, computed as a max of the negation.
pub fn check_replicas(
    comm: &dyn Collective,
    vars: &BTreeMap<String, Var>,
    when: &str,
) -> Result<()> {
    if comm.size() == 1 {
        return Ok(());
    }
    let h = weights_checksum(vars)?;
    let (hi, lo) = ((h >> 32) as f64, (h & 0xffff_ffff) as f64);
    let mut v = [hi, lo, -hi, -lo];
    comm.max_f64(&mut v)?;
    if v[0] != -v[2] || v[1] != -v[3] {
        return Err(Error::Collective(format!(
            "the ranks' weights differ {when} (this is rank {} of {}, checksum {h:016x}): every \
             rank must run the same aha build on the same config, data and checkpoint",
            comm.rank(),
            comm.size()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn checksum_sees_one_flipped_bit() {
        let dev = Device::Cpu;
        let a = Var::new(&[1.0f32, 2.0, 3.0], &dev).unwrap();
        let b = Var::new(&[1.0f32, f32::from_bits(2.0f32.to_bits() ^ 1), 3.0], &dev).unwrap();
        let h =
            |v: &Var| weights_checksum(&BTreeMap::from([("w".to_string(), v.clone())])).unwrap();
        assert_ne!(h(&a), h(&b));
        assert_eq!(h(&a), h(&a.clone()));
        check_replicas(&super::super::Single, &BTreeMap::new(), "at step 1").unwrap();
    }
}
