//! Feature pins for the whole workspace, in the manner of `cargo hakari`'s workspace-hack crates.
//!
//! Cargo resolves the features of a dependency from the packages and targets a command builds:
//! `cargo build -p floe-client` leaves out dev-dependencies and the other crates' requests, so a
//! crate such as tokio or rand_core can end up with fewer features than under `cargo test
//! --workspace --all-targets`, and then everything above it (DataFusion included) is compiled a
//! second time. This crate depends on those crates with the union of the features any command
//! asks for; `floe-core`, which every other crate depends on, depends on it. `.ci/run` fails
//! (`.ci/feature_sets.py`) when a command would still resolve a different feature set, naming the
//! crate and the features to add here.
