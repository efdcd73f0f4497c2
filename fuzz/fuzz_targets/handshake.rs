#![no_main]
//! libFuzzer target: [`masq_fuzz::entries::handshake`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| masq_fuzz::entries::handshake(data));
