//! Which device a command runs on: `cpu`, `cuda` or `cuda:N` (config key `device`, flag
//! `--device`). Opening a CUDA device in a build without the `cuda` feature is an error that says
//! how to get one.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;
use serde::{Deserialize, Serialize};

/// A device by name, as configs and flags spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    #[default]
    Cpu,
    /// The CUDA device with this ordinal (`cuda` is `cuda:0`).
    Cuda(usize),
}

/// What went wrong opening a device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "device {0}: this aha was built without CUDA; build the CUDA binary with \
         scripts/build-cuda.sh (it runs `cargo build --release --features cuda`) and run \
         target/cuda/release/aha"
    )]
    NotBuilt(DeviceSpec),
    #[error("device {spec}: {message}")]
    Open { spec: DeviceSpec, message: String },
}

impl DeviceSpec {
    /// Whether this binary was built with CUDA support.
    pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

    /// The candle device, or a clear error when this build or machine has none.
    pub fn open(self) -> Result<Device, DeviceError> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(_) if !Self::CUDA_BUILT => Err(DeviceError::NotBuilt(self)),
            DeviceSpec::Cuda(n) => Device::new_cuda(n).map_err(|e| DeviceError::Open {
                spec: self,
                message: format!("cannot open the GPU (is the NVIDIA driver loaded?): {e}"),
            }),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(0) => f.write_str("cuda"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("unknown device {s:?}: expected `cpu`, `cuda` or `cuda:N`");
        match s.trim() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            other => match other.strip_prefix("cuda:") {
                Some(n) => n.parse().map(DeviceSpec::Cuda).map_err(|_| bad()),
                None => Err(bad()),
            },
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() {
        assert_eq!("cpu".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceSpec::Cuda(3)));
        for d in [DeviceSpec::Cpu, DeviceSpec::Cuda(0), DeviceSpec::Cuda(2)] {
            assert_eq!(d.to_string().parse(), Ok(d));
        }
        for bad in ["gpu", "cuda:", "cuda:x", "cuda0", "metal"] {
            let err = bad.parse::<DeviceSpec>().unwrap_err();
            assert!(err.contains("cuda:N"), "{bad}: {err}");
        }
    }

    #[test]
    fn cuda_without_the_feature_says_how_to_build_it() {
        assert!(DeviceSpec::Cpu.open().unwrap().is_cpu());
        if !DeviceSpec::CUDA_BUILT {
            let err = DeviceSpec::Cuda(1).open().unwrap_err().to_string();
            assert!(
                err.contains("cuda:1") && err.contains("scripts/build-cuda.sh"),
                "{err}"
            );
        }
    }

    #[test]
    fn configs_spell_devices_as_strings() {
        #[derive(Deserialize, Serialize)]
        struct C {
            device: DeviceSpec,
        }
        let c: C = toml::from_str("device = \"cuda:1\"").unwrap();
        assert_eq!(c.device, DeviceSpec::Cuda(1));
        assert_eq!(toml::to_string(&c).unwrap().trim(), "device = \"cuda:1\"");
        let err = toml::from_str::<C>("device = \"tpu\"")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("tpu"), "{err}");
    }
}
