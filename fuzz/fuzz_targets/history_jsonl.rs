#![no_main]
//! `tenure_scenarios::fuzz::history_jsonl` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tenure_scenarios::fuzz::history_jsonl(data));
