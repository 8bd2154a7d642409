#![no_main]
//! `tenure_scenarios::fuzz::sweep_results` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tenure_scenarios::fuzz::sweep_results(data));
