#![no_main]
//! libFuzzer target: [`masq_fuzz::entries::onnx_import`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| masq_fuzz::entries::onnx_import(data));
