#![no_main]
//! `tenure_scenarios::fuzz::jepsen_log` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tenure_scenarios::fuzz::jepsen_log(data));
