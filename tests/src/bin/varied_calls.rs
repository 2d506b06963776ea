//! Prints the generated calls of the transcription coverage test
//! (`earshot_server::testing::varied_script`, seeds 0 to N-1) as JSON, one call a line:
//! `{"seed", "lines": [{"speaker", "text", "pause_before_ms"}]}`. scripts/bench-asr speaks
//! the same calls, so the benchmark and the test measure one set.
//!
//! Usage: varied-calls [N] (default 12)

#[allow(clippy::print_stdout)]
fn main() {
    let count: u64 = std::env::args().nth(1).and_then(|count| count.parse().ok()).unwrap_or(12);
    for seed in 0..count {
        let lines = earshot_e2e::audio::varied_script(seed);
        println!("{}", serde_json::json!({ "seed": seed, "lines": lines }));
    }
}
