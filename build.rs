//! With the `train` feature (libtorch through masq-trainer), bake libtorch's library directory
//! into the `masq` binary as an rpath so it runs without `LD_LIBRARY_PATH`. `LIBTORCH` comes from
//! `.cargo/config.toml` (the `.masq/libtorch` link made by `scripts/setup.sh`) or the environment.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_TRAIN").is_some()
        && let Some(dir) = std::env::var_os("LIBTORCH")
    {
        let lib = std::path::Path::new(&dir).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
