//! `FloePhysicalCodec`: datafusion-proto extension codec for Floe's own plan nodes.
//!
//! datafusion-proto serializes DataFusion's built-in operators; anything Floe adds travels as a
//! `PhysicalExtensionNode` whose bytes this codec writes and reads. The Iceberg scan is encoded
//! from its [`IcebergScanSpec`] (files, schema, projection, pruning predicate), never from the
//! `DataSourceExec` inside it, because datafusion-proto's Parquet encoding drops the field-id
//! adapter and the metadata-cache reader factory.

use std::sync::Arc;

use datafusion::common::{Result, Statistics, internal_datafusion_err};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use datafusion_proto::physical_plan::from_proto::parse_physical_expr;
use datafusion_proto::physical_plan::to_proto::serialize_physical_expr;
use datafusion_proto::protobuf;
use prost::Message;

use crate::iceberg::scan::{IcebergScanExec, IcebergScanSpec, ScanFile};

/// Wire form of [`IcebergScanSpec`].
#[derive(Clone, PartialEq, Message)]
pub struct IcebergScanNode {
    /// Display name.
    #[prost(string, tag = "1")]
    pub table_name: String,
    /// Snapshot id, absent for an empty table.
    #[prost(int64, optional, tag = "2")]
    pub snapshot_id: Option<i64>,
    /// Full table schema with field-id metadata.
    #[prost(message, optional, tag = "3")]
    pub table_schema: Option<protobuf::Schema>,
    /// Object store URL.
    #[prost(string, tag = "4")]
    pub object_store_url: String,
    /// File groups, one per partition.
    #[prost(message, repeated, tag = "5")]
    pub file_groups: Vec<ScanFileGroup>,
    /// Whether `projection` is set (an empty projection is valid: `count(*)`).
    #[prost(bool, tag = "6")]
    pub has_projection: bool,
    /// Projected column indices.
    #[prost(uint32, repeated, tag = "7")]
    pub projection: Vec<u32>,
    /// Pruning predicate.
    #[prost(message, optional, tag = "8")]
    pub predicate: Option<protobuf::PhysicalExprNode>,
    /// Pushed-down limit.
    #[prost(uint64, optional, tag = "9")]
    pub limit: Option<u64>,
    /// Rows per batch.
    #[prost(uint64, tag = "10")]
    pub batch_size: u64,
    /// Data files in the snapshot before pruning.
    #[prost(uint64, tag = "11")]
    pub files_in_snapshot: u64,
}

/// The files of one partition.
#[derive(Clone, PartialEq, Message)]
pub struct ScanFileGroup {
    /// Files, in read order.
    #[prost(message, repeated, tag = "1")]
    pub files: Vec<ScanFileNode>,
}

/// One data file.
#[derive(Clone, PartialEq, Message)]
pub struct ScanFileNode {
    /// Path inside the object store.
    #[prost(string, tag = "1")]
    pub path: String,
    /// Size in bytes.
    #[prost(uint64, tag = "2")]
    pub size_bytes: u64,
    /// Row count from the manifest.
    #[prost(uint64, optional, tag = "3")]
    pub record_count: Option<u64>,
    /// Inexact column statistics from the manifest.
    #[prost(message, optional, tag = "4")]
    pub statistics: Option<datafusion_proto_common::Statistics>,
}

/// Floe's extension codec; see the module docs.
#[derive(Debug, Default, Clone)]
pub struct FloePhysicalCodec;

impl PhysicalExtensionCodec for FloePhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        _inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let node = IcebergScanNode::decode(buf)
            .map_err(|e| internal_datafusion_err!("cannot decode Floe plan node: {e}"))?;
        let schema_proto = node
            .table_schema
            .as_ref()
            .ok_or_else(|| internal_datafusion_err!("Iceberg scan node without a schema"))?;
        let table_schema: arrow::datatypes::Schema = schema_proto.try_into()?;
        let table_schema = Arc::new(table_schema);
        let predicate = node
            .predicate
            .as_ref()
            .map(|p| parse_physical_expr(p, ctx, &table_schema, self))
            .transpose()?;
        let spec = IcebergScanSpec {
            table_name: node.table_name,
            snapshot_id: node.snapshot_id,
            table_schema,
            object_store_url: node.object_store_url,
            file_groups: node
                .file_groups
                .into_iter()
                .map(|group| {
                    group
                        .files
                        .into_iter()
                        .map(|f| {
                            let statistics = f
                                .statistics
                                .as_ref()
                                .map(|s| Statistics::try_from(s).map(Arc::new))
                                .transpose()?;
                            Ok(ScanFile {
                                path: f.path,
                                size_bytes: f.size_bytes,
                                record_count: f.record_count,
                                statistics,
                            })
                        })
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<Vec<_>>>()?,
            projection: node
                .has_projection
                .then(|| node.projection.iter().map(|i| *i as usize).collect()),
            predicate,
            limit: node.limit.map(|l| l as usize),
            batch_size: node.batch_size as usize,
            files_in_snapshot: node.files_in_snapshot,
        };
        Ok(Arc::new(IcebergScanExec::try_new(
            spec,
            ctx.runtime_env().as_ref(),
        )?))
    }

    fn try_encode(&self, node: Arc<dyn ExecutionPlan>, buf: &mut Vec<u8>) -> Result<()> {
        let Some(scan) = node.as_any().downcast_ref::<IcebergScanExec>() else {
            return Err(internal_datafusion_err!(
                "Floe codec cannot encode plan node {}",
                node.name()
            ));
        };
        let spec = scan.spec();
        let message = IcebergScanNode {
            table_name: spec.table_name.clone(),
            snapshot_id: spec.snapshot_id,
            table_schema: Some(spec.table_schema.as_ref().try_into()?),
            object_store_url: spec.object_store_url.clone(),
            file_groups: spec
                .file_groups
                .iter()
                .map(|group| ScanFileGroup {
                    files: group
                        .iter()
                        .map(|f| ScanFileNode {
                            path: f.path.clone(),
                            size_bytes: f.size_bytes,
                            record_count: f.record_count,
                            statistics: f.statistics.as_deref().map(Into::into),
                        })
                        .collect(),
                })
                .collect(),
            has_projection: spec.projection.is_some(),
            projection: spec
                .projection
                .iter()
                .flatten()
                .map(|i| *i as u32)
                .collect(),
            predicate: spec
                .predicate
                .as_ref()
                .map(|p| serialize_physical_expr(p, self))
                .transpose()?,
            limit: spec.limit.map(|l| l as u64),
            batch_size: spec.batch_size as u64,
            files_in_snapshot: spec.files_in_snapshot,
        };
        message
            .encode(buf)
            .map_err(|e| internal_datafusion_err!("cannot encode Iceberg scan node: {e}"))
    }
}
