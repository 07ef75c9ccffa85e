//! Hands Cargo's target triple to the crate: a binary downloaded from a release names the
//! platform it was built for in `--version`, which is what a bug report needs to know.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Cargo always sets TARGET for build scripts; the fallback only keeps a hand-run
    // build.rs from panicking.
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown target".to_owned());
    println!("cargo:rustc-env=SIPGATEIO_CALLEVENTS_TARGET={target}");
}
