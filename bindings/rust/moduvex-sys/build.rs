//! Finds libmoduvex through pkg-config (`moduvex.pc`, or `moduvex-uninstalled.pc` of a build
//! tree, which pkg-config prefers) and links it.
//!
//! PKG_CONFIG_PATH is honoured; the workspace's `.cargo/config.toml` defaults it to the repository
//! root, where the README's setup builds the library.
//!
//! Besides the link flags this prints, for each library directory:
//! - `cargo:rustc-link-arg=-Wl,-rpath,DIR`, so that this crate's own tests run without
//!   LD_LIBRARY_PATH;
//! - `cargo:libdir=DIR` (read by dependents' build scripts as `DEP_MODUVEX_LIBDIR`, directories
//!   separated by the platform's path separator), because link arguments do not propagate to
//!   dependents: a crate that wants the same rpath for its binaries and tests prints it from its
//!   own build script (the `moduvex` crate does).

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let lib = match pkg_config::Config::new()
        .atleast_version("1.0")
        .probe("moduvex")
    {
        Ok(lib) => lib,
        Err(err) => {
            eprintln!("{err}");
            panic!(
                "moduvex-sys: pkg-config cannot find libmoduvex >= 1.0 (moduvex.pc). Build the C \
                 library in the repository root first (see README.md: autoreconf -fi && \
                 ./configure && make), or `make install` it, or point PKG_CONFIG_PATH at the \
                 directory holding moduvex.pc or moduvex-uninstalled.pc (currently {:?}).",
                env::var("PKG_CONFIG_PATH").unwrap_or_default()
            );
        }
    };
    for dir in &lib.link_paths {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    }
    let dirs = env::join_paths(&lib.link_paths).expect("library directory with a path separator");
    println!("cargo:libdir={}", dirs.to_string_lossy());
    for dir in &lib.include_paths {
        println!("cargo:include={}", dir.display());
    }
}
