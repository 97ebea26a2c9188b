//! The planner on any question text against the demo tenant's knowledge.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ops_fuzz::planner_case::planner_case(data);
});
