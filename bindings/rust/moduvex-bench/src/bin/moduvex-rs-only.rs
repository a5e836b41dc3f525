//! `moduvex-rs-only [workload ...]`: bench/compare's workloads on the Rust binding only
//! (`impl=moduvex-rs` lines), the interface `bench/compare/run` expects of EXTRA_IMPLS binaries.
fn main() -> std::process::ExitCode {
    moduvex_bench::main(Some(moduvex_bench::Impl::ModuvexRs))
}
