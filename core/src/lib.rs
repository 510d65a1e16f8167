//! # floe-core
//!
//! Floe's engine: the SQL session that every binary runs ([`session::FloeSession`]), the
//! datafusion-proto codec that ships Floe's plan nodes to executors ([`codec`]), the join-order
//! rule ([`join_order`]) and the text rendering of rows ([`text_rows`]), over the crates that own
//! each concern:
//!
//! | crate | owns |
//! |---|---|
//! | `floe-common` | the error type, `floe.toml`, session options, bounded caches, table-name encodings |
//! | `floe-proto` | `floe.proto` (control plane), protocol constants, the error-to-status map |
//! | `floe-shuffle` | shuffle writer/reader operators, task files, their Arrow Flight transport |
//! | `floe-sql` | the parser: Floe's statements and DataFusion's in one pass, time travel |
//! | `floe-iceberg` | catalogs, table providers, the scan and deletes, the writer, DDL, metadata tables |
//!
//! ## How a query flows
//!
//! ```text
//!  SQL text ──► floe_sql::FloeParser (one tokenizer pass, DataFusion's DFParser + Floe's syntax)
//!                   │ FloeStatement
//!                   ▼
//!              FloeSession ──(Floe DDL: USE, SHOW, CREATE/DROP)──► Iceberg catalog
//!                   │ DataFusion statement
//!                   └──► DataFusion SQL planner + optimizer (+ join_order::JoinOrder)
//!                             │ table lookups
//!                             ▼
//!        floe_iceberg::provider::IcebergCatalogProvider ─► IcebergTableProvider
//!                             │ scan(): iceberg::TableScan::plan_files()
//!                             ▼          (manifest-list, partition and metrics pruning)
//!              floe_iceberg::scan::IcebergScanExec ─► DataSourceExec(ParquetSource)
//!                                          field-id mapping, cached footers/page indexes
//! ```
//!
//! Writes (`INSERT`, `CREATE TABLE AS`) go through `IcebergTableProvider::insert_into` to a
//! `floe_iceberg::sink::IcebergSink`, which writes Parquet with the `iceberg` crate's writers and
//! commits one snapshot per statement.
//!
//! The scan node holds only plain data (`floe_iceberg::scan::IcebergScanSpec`) so that
//! [`codec::FloePhysicalCodec`] can ship it, and the shuffle operators, with datafusion-proto.
//! [`install_crypto_provider`] picks rustls's one crypto provider for the process.

pub mod codec;
pub mod join_order;
pub mod session;
pub mod text_rows;

/// Makes rustls over ring the process's one TLS crypto provider.
///
/// rustls is compiled with two providers, ring (object_store, tonic) and aws-lc-rs (opendal's
/// reqwest 0.13, through the `iceberg` crate's default storage), and with both compiled in it picks
/// neither: a TLS configuration built without an explicit provider would panic. Every Floe binary
/// calls this before anything else. A provider installed earlier (by an application embedding
/// Floe) is kept, and calling it again does nothing.
pub fn install_crypto_provider() {
    // Err only means a provider is installed already, which is all this asks for.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub use floe_common::{FloeConfig, FloeError, Result};
pub use session::{FloeCatalogs, FloeSession, SUMMARY_METADATA_KEY, StatementOutput};

#[cfg(test)]
mod tests {
    #[test]
    fn tls_configs_build_without_naming_a_provider() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        // With two providers compiled in and none installed, this builder panics.
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        assert!(!config.crypto_provider().cipher_suites.is_empty());
    }
}
