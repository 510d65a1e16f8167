//! The executor's integration tests, in one test binary: every test binary links all of
//! DataFusion, so each crate has one, with a module per subject.
#![allow(clippy::unwrap_used, missing_docs)]

mod join_filters;
mod startup;
