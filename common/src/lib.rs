//! # floe-common
//!
//! What every Floe crate shares and nothing else: the one error type ([`error::FloeError`]),
//! `floe.toml` ([`config`]), the `SET`-able session options ([`options`]), the bounded caches of
//! immutable metadata ([`cache`]), and the encodings a rewritten SQL table name carries from the
//! parser (`floe-sql`) to the Iceberg schema provider (`floe-iceberg`) ([`table_names`]).
//!
//! It sits at the bottom of Floe's crates so that the SQL front end and the Iceberg integration
//! depend on it and not on each other: an edit to the parser does not recompile the scan.

pub mod cache;
pub mod config;
pub mod error;
pub mod options;
pub mod table_names;

pub use config::FloeConfig;
pub use error::{FloeError, Result};
