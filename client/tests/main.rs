//! The client's integration tests (the shell, clusters of processes, the lake, the `.slt` files
//! on clusters), in one test binary: every test binary links all of DataFusion, so each crate has
//! one (as DataFusion's `core_integration`), with a module per subject.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "support/processes.rs"]
mod processes;
#[path = "support/report_proxy.rs"]
mod report_proxy;
#[path = "../../core/tests/support/slt_types.rs"]
mod slt_types;
#[path = "support/weed.rs"]
mod weed;

mod cluster;
mod concurrent_writes;
mod flight_sql;
mod lake;
mod shell;
mod sqllogictests;
