//! floe-core's integration tests, in one test binary: every test binary links all of DataFusion,
//! so each crate has one (as DataFusion's `core_integration`), with a module per subject.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;
#[path = "support/slt_types.rs"]
mod slt_types;

mod codec;
mod errors;
mod iceberg_sql;
mod sqllogictests;
