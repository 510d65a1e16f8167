//! # floe-iceberg
//!
//! Floe's Iceberg integration: opening catalogs and object stores from `floe.toml`
//! ([`catalogs`], with SigV4 signing for REST catalogs served by AWS in [`rest_signing`]),
//! DataFusion providers over them ([`provider`]), the distributed-ready scan ([`scan`]) with
//! position, equality and deletion-vector deletes ([`deletes`]), the append writer ([`sink`]),
//! metadata tables ([`metadata_tables`]), time travel ([`time_travel`]) and the DDL translation
//! (SQL types and `PARTITIONED BY` transforms, [`ddl`]).
//!
//! A scan holds only plain data ([`scan::IcebergScanSpec`]) so that the plan codec in
//! `floe-core` can ship it to executors.

pub mod catalogs;
pub mod commit;
pub mod concurrent_files;
pub mod ddl;
pub mod deletes;
pub mod field_ids;
pub mod metadata_tables;
mod partitions_table;
pub mod provider;
pub mod relabel;
pub mod rest_signing;
pub mod scan;
pub mod sink;
pub mod stats;
pub mod time_travel;

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::Result as DFResult;
use url::Url;

use floe_common::error::{FloeError, iceberg_to_df};

/// The Arrow schema of an Iceberg schema, each field carrying its field id: the types the
/// `iceberg` crate's writers take.
pub fn arrow_schema_of(schema: &iceberg::spec::Schema) -> DFResult<SchemaRef> {
    Ok(Arc::new(
        iceberg::arrow::schema_to_arrow_schema(schema).map_err(iceberg_to_df)?,
    ))
}

/// The Arrow schema queries see: [`arrow_schema_of`] with top-level strings and binaries as
/// view types, which DataFusion's Parquet reader produces without copying (as it does for
/// plain Parquet tables, `schema_force_view_types`).
pub fn query_schema_of(schema: &iceberg::spec::Schema) -> DFResult<SchemaRef> {
    let stored = arrow_schema_of(schema)?;
    let fields: Vec<Field> = stored
        .fields()
        .iter()
        .map(|field| {
            let view = match field.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
                DataType::Binary | DataType::LargeBinary => DataType::BinaryView,
                other => other.clone(),
            };
            field.as_ref().clone().with_data_type(view)
        })
        .collect();
    Ok(Arc::new(Schema::new_with_metadata(
        fields,
        stored.metadata().clone(),
    )))
}

/// Splits a file location written in Iceberg metadata into DataFusion's object-store URL and
/// the path inside that store: `s3://bucket/a/b` is (`s3://bucket`, `a/b`), `file:///a/b` and
/// `/a/b` are (`file://`, `a/b`).
pub fn object_store_location(location: &str) -> Result<(String, String), FloeError> {
    if location.starts_with('/') {
        return Ok((
            "file://".to_string(),
            location.trim_start_matches('/').to_string(),
        ));
    }
    let url = Url::parse(location)
        .map_err(|e| FloeError::plan(format!("invalid file location `{location}`: {e}")))?;
    let path = object_store::path::Path::from_url_path(url.path())
        .map_err(|e| FloeError::plan(format!("invalid file location `{location}`: {e}")))?
        .to_string();
    match url.scheme() {
        "file" => Ok(("file://".to_string(), path)),
        scheme => Ok((format!("{scheme}://{}", url.authority()), path)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn locations_split_into_store_and_path() {
        assert_eq!(
            object_store_location("s3://bucket/wh/t/data/a=1/f.parquet").unwrap(),
            ("s3://bucket".into(), "wh/t/data/a=1/f.parquet".into())
        );
        assert_eq!(
            object_store_location("file:///tmp/wh/f.parquet").unwrap(),
            ("file://".into(), "tmp/wh/f.parquet".into())
        );
        assert_eq!(
            object_store_location("/tmp/wh/f.parquet").unwrap(),
            ("file://".into(), "tmp/wh/f.parquet".into())
        );
    }
}
