#![no_main]
//! `tenure_scenarios::fuzz::scenario_toml` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tenure_scenarios::fuzz::scenario_toml(data));
