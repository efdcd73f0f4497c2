//! masq's fuzz targets: [`entries`] holds one entry function per untrusted input format; each
//! file of `fuzz_targets/` is a libFuzzer wrapper around one of them.

/// The dataset decoders of masq-trainer, compiled here without libtorch (the file depends only
/// on `std`, `flate2` and `image`).
#[path = "../../trainer/src/data/decode.rs"]
#[allow(dead_code)]
pub mod data_decode;

pub mod entries;
