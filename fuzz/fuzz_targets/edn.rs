#![no_main]
//! `tenure_scenarios::fuzz::edn` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tenure_scenarios::fuzz::edn(data));
