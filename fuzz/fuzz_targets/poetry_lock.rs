#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxbuild_fuzz_targets::poetry_lock(data));
