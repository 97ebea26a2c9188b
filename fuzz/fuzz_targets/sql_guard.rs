//! The SQL guard on any statement text in any dialect (first byte: the dialect).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ops_fuzz::guard_case::guard_case(data);
});
