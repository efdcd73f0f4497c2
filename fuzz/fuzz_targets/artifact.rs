#![no_main]
//! libFuzzer target: [`masq_fuzz::entries::artifact`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| masq_fuzz::entries::artifact(data));
