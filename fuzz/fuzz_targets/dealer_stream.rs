#![no_main]
//! libFuzzer target: [`masq_fuzz::entries::dealer_stream`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| masq_fuzz::entries::dealer_stream(data));
