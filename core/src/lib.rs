//! # floe-core
//!
//! The library every Floe binary shares: configuration, catalogs, the Iceberg integration, the
//! plan codec and the SQL session.
//!
//! ## How a query flows
//!
//! ```text
//!  SQL text ──► FloeSession ──(Floe DDL: USE, SHOW, CREATE/DROP)──► Iceberg catalog
//!                   │
//!                   └──► DataFusion SQL planner + optimizer
//!                             │ table lookups
//!                             ▼
//!                 IcebergCatalogProvider ─► IcebergTableProvider
//!                             │ scan(): iceberg::TableScan::plan_files()
//!                             ▼          (manifest-list, partition and metrics pruning)
//!                      IcebergScanExec ─► DataSourceExec(ParquetSource)
//!                                          field-id mapping, cached footers/page indexes
//! ```
//!
//! Writes (`INSERT`, `CREATE TABLE AS`) go through `IcebergTableProvider::insert_into` to an
//! [`iceberg::sink::IcebergSink`], which writes Parquet with the `iceberg` crate's writers and
//! commits one snapshot per statement.
//!
//! `IcebergScanExec` holds only plain data ([`iceberg::scan::IcebergScanSpec`]) so that
//! [`codec::FloePhysicalCodec`] can ship it to executors with datafusion-proto.
//!
//! ## Modules
//! - [`config`]: `floe.toml`.
//! - [`cache`]: bounded caches of immutable Iceberg metadata.
//! - [`catalogs`]: Iceberg catalogs and object stores from config.
//! - [`iceberg`]: providers, scan, sink, DDL translation.
//! - [`codec`]: the datafusion-proto extension codec.
//! - [`session`]: statement dispatch.
//! - [`sql_text`]: quote-aware statement splitting.
//! - [`error`]: [`error::FloeError`].

pub mod cache;
pub mod catalogs;
pub mod codec;
pub mod config;
pub mod error;
pub mod iceberg;
pub mod session;
pub mod shuffle;
pub mod sql_text;
pub mod text_rows;

/// The control-plane protocol (`proto/floe.proto`), generated at build time.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/floe.v1.rs"));
}

pub use config::FloeConfig;
pub use error::{FloeError, Result};
pub use session::{FloeCatalogs, FloeSession, SUMMARY_METADATA_KEY, StatementOutput};
