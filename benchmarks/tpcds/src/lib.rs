//! Floe's TPC-DS harness.
//!
//! - [`generate`] writes the 24 tables, from the `tpcdsgen` crate's rows, into Iceberg tables
//!   through Floe's own write path ([`schema`] holds their columns).
//! - [`queries`] holds the 99 queries (DuckDB's rendering of the templates, compiled in).
//! - [`run`] runs them in rounds on a cluster over Flight SQL, as a user's shell would, and
//!   reports per-query medians, the total and the geometric mean; optionally it runs each
//!   query on single-process DataFusion over the same tables in the same run, for a ratio
//!   measured side by side.
//! - [`answers`] reads reference answers and compares results with them: numbers within a
//!   relative tolerance (engines differ in DECIMAL vs DOUBLE arithmetic), row order only where
//!   the query orders its result.

pub mod answers;
pub mod error;
pub mod generate;
pub mod queries;
pub mod run;
pub mod schema;

pub use error::{Result, TpcdsError};
