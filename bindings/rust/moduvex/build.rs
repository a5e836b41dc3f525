//! Link arguments printed by moduvex-sys's build script do not reach this crate's test binaries,
//! so the rpath of the C library's directory (DEP_MODUVEX_LIBDIR, from moduvex-sys) is printed
//! again here: `cargo test` then runs without LD_LIBRARY_PATH.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_MODUVEX_LIBDIR");
    if let Some(dirs) = std::env::var_os("DEP_MODUVEX_LIBDIR") {
        for dir in std::env::split_paths(&dirs) {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
        }
    }
}
