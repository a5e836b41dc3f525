//! `moduvex-rs-bench [workload ...]`: bench/compare's workloads on the Rust binding and on tokio,
//! interleaved (for each workload: moduvex-rs, then tokio), each in its own process.
//! `MVX_BENCH_IMPL=moduvex-rs` (or `tokio`) runs one implementation only, in this process.
fn main() -> std::process::ExitCode {
    moduvex_bench::main(None)
}
