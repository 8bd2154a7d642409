#![no_main]
//! `tenure_scenarios::fuzz::fault_schedule` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tenure_scenarios::fuzz::fault_schedule(data));
