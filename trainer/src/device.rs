//! Device selection: `auto` (the first CUDA device when there is one, else the CPU), `cpu`,
//! `cuda` or `cuda:N`.

pub use tch::Device;

use crate::error::{Result, TrainerError};

/// Parse and check a device spec.
pub fn parse_device(spec: &str) -> Result<Device> {
    let bad = |reason: String| TrainerError::BadDevice { spec: spec.to_string(), reason };
    let s = spec.trim().to_ascii_lowercase();
    match s.as_str() {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        _ => {
            let idx = match s.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => rest
                    .strip_prefix(':')
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| bad("expected auto, cpu, cuda or cuda:N".into()))?,
                None => return Err(bad("expected auto, cpu, cuda or cuda:N".into())),
            };
            let n = tch::Cuda::device_count().max(0) as usize;
            if idx >= n {
                return Err(bad(format!("{n} CUDA device(s) visible")));
            }
            Ok(Device::Cuda(idx))
        }
    }
}

/// Set the number of CPU threads libtorch uses for intra-op parallelism.
pub fn set_threads(n: usize) {
    tch::set_num_threads(n.clamp(1, i32::MAX as usize) as i32);
}

/// The number of CPU threads libtorch uses.
pub fn threads() -> usize {
    tch::get_num_threads().max(1) as usize
}

/// A device as a spec string (`cpu`, `cuda:0`).
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert_eq!(parse_device("CPU").unwrap(), Device::Cpu);
        assert!(parse_device("gpu").is_err());
        assert!(parse_device("cuda:x").is_err());
        assert!(parse_device("cuda:999").is_err());
        assert!(parse_device("auto").is_ok());
    }
}
