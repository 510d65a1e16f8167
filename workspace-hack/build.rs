//! Empty: cargo applies a package's `[build-dependencies]` only when it has a build script, and
//! those entries pin the features of build scripts' and proc-macros' own copies of crates.
fn main() {}
