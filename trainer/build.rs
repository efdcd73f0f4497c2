//! Bake the libtorch library directory into binaries and test binaries as an rpath, so they run
//! without `LD_LIBRARY_PATH`. `LIBTORCH` comes from `.cargo/config.toml` (the `.masq/libtorch` link
//! that `scripts/setup.sh` creates) or from the caller's environment.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Some(dir) = std::env::var_os("LIBTORCH") {
        let lib = std::path::Path::new(&dir).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
