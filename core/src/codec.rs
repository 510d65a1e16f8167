//! `FloePhysicalCodec`: datafusion-proto extension codec for Floe's own plan nodes.
//!
//! datafusion-proto serializes DataFusion's built-in operators; anything Floe adds travels as a
//! `PhysicalExtensionNode` holding one [`FloePlanNode`]: the Iceberg scan, the shuffle writer
//! that ends a stage or the shuffle reader that starts one. The Iceberg scan is encoded from its
//! [`IcebergScanSpec`] (files, schema, projection, pruning predicate, storage settings), never
//! from the `DataSourceExec` inside it, because datafusion-proto's Parquet encoding drops the
//! field-id adapter and the metadata-cache reader factory.

use std::sync::Arc;

use arrow::datatypes::Schema;
use datafusion::common::{Result, Statistics, internal_datafusion_err, internal_err};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::from_proto::{
    parse_physical_expr, parse_physical_sort_exprs, parse_protobuf_partitioning,
};
use datafusion_proto::physical_plan::to_proto::{
    serialize_partitioning, serialize_physical_expr, serialize_physical_sort_exprs,
};
use datafusion_proto::physical_plan::{DefaultPhysicalProtoConverter, PhysicalExtensionCodec};
use datafusion_proto::protobuf;
use prost::Message;

use floe_iceberg::deletes::{DeleteFile, DeleteKind};
use floe_iceberg::scan::{IcebergScanExec, IcebergScanSpec, ScanFile};
use floe_shuffle::{ColumnEquivalences, ShuffleLocation, ShuffleReaderExec, ShuffleWriterExec};

/// One Floe plan node on the wire.
#[derive(Clone, PartialEq, Message)]
pub struct FloePlanNode {
    /// Which node.
    #[prost(oneof = "FloeNodeKind", tags = "1, 2, 3")]
    pub kind: Option<FloeNodeKind>,
}

/// The node kinds of [`FloePlanNode`].
// One short-lived value per plan node while encoding or decoding; boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum FloeNodeKind {
    /// [`IcebergScanExec`].
    #[prost(message, tag = "1")]
    IcebergScan(IcebergScanNode),
    /// [`ShuffleWriterExec`] (its input is the extension node's one input).
    #[prost(message, tag = "2")]
    ShuffleWriter(ShuffleWriterNode),
    /// [`ShuffleReaderExec`].
    #[prost(message, tag = "3")]
    ShuffleReader(ShuffleReaderNode),
}

/// Wire form of [`ShuffleWriterExec`].
#[derive(Clone, PartialEq, Message)]
pub struct ShuffleWriterNode {
    /// Job id.
    #[prost(string, tag = "1")]
    pub job_id: String,
    /// Stage id.
    #[prost(uint32, tag = "2")]
    pub stage_id: u32,
    /// Output partitioning; absent for one file per task.
    #[prost(message, optional, tag = "3")]
    pub partitioning: Option<protobuf::Partitioning>,
}

/// Wire form of [`ShuffleReaderExec`].
#[derive(Clone, PartialEq, Message)]
pub struct ShuffleReaderNode {
    /// Stage read.
    #[prost(uint32, tag = "1")]
    pub stage_id: u32,
    /// Schema of the rows.
    #[prost(message, optional, tag = "2")]
    pub schema: Option<protobuf::Schema>,
    /// Partitioning of the rows (mirrors the exchange the reader replaced).
    #[prost(message, optional, tag = "3")]
    pub partitioning: Option<protobuf::Partitioning>,
    /// Ordering kept within each partition.
    #[prost(message, repeated, tag = "4")]
    pub ordering: Vec<protobuf::PhysicalSortExprNode>,
    /// Files per partition.
    #[prost(message, repeated, tag = "5")]
    pub partitions: Vec<ShufflePartitionNode>,
    /// Every task reads all partitions.
    #[prost(bool, tag = "6")]
    pub broadcast: bool,
    /// Columns with one value in all rows.
    #[prost(uint32, repeated, tag = "7")]
    pub constant_columns: Vec<u32>,
    /// Columns with one value within each partition.
    #[prost(uint32, repeated, tag = "9")]
    pub partition_constant_columns: Vec<u32>,
    /// Groups of columns equal in every row.
    #[prost(message, repeated, tag = "8")]
    pub equal_columns: Vec<EqualColumnsNode>,
}

/// Columns (by index) whose values are equal in every row.
#[derive(Clone, PartialEq, Message)]
pub struct EqualColumnsNode {
    /// Column indices.
    #[prost(uint32, repeated, tag = "1")]
    pub columns: Vec<u32>,
}

/// The files of one shuffle partition.
#[derive(Clone, PartialEq, Message)]
pub struct ShufflePartitionNode {
    /// Files.
    #[prost(message, repeated, tag = "1")]
    pub locations: Vec<ShuffleLocationNode>,
}

/// Wire form of [`ShuffleLocation`].
#[derive(Clone, PartialEq, Message)]
pub struct ShuffleLocationNode {
    /// Executor id.
    #[prost(string, tag = "1")]
    pub executor_id: String,
    /// Flight address.
    #[prost(string, tag = "2")]
    pub address: String,
    /// Path relative to the work dir.
    #[prost(string, tag = "3")]
    pub path: String,
    /// Rows.
    #[prost(uint64, tag = "4")]
    pub rows: u64,
    /// Bytes.
    #[prost(uint64, tag = "5")]
    pub bytes: u64,
    /// Byte ranges of the file, as start, end, start, end, ...
    #[prost(uint64, repeated, tag = "6")]
    pub range_bounds: Vec<u64>,
}

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
    /// The catalog's S3 settings as JSON, for processes without the catalog.
    #[prost(string, optional, tag = "12")]
    pub s3_json: Option<String>,
    /// The reader filters rows with `predicate` (no `FilterExec` above it does).
    #[prost(bool, tag = "13")]
    pub pushdown_filters: bool,
    /// The reader may reorder its row filters.
    #[prost(bool, tag = "14")]
    pub reorder_filters: bool,
    /// Row-level delete files, each once; data files refer to them by index.
    #[prost(message, repeated, tag = "15")]
    pub delete_files: Vec<DeleteFileNode>,
    /// Files a partition reads at once.
    #[prost(uint32, tag = "16")]
    pub concurrent_files: u32,
}

/// Wire form of a [`DeleteFile`].
#[derive(Clone, PartialEq, Message)]
pub struct DeleteFileNode {
    /// Location as the manifest writes it.
    #[prost(string, tag = "1")]
    pub location: String,
    /// Size in bytes.
    #[prost(uint64, tag = "2")]
    pub size_bytes: u64,
    /// Field ids compared by an equality delete file (empty otherwise).
    #[prost(int32, repeated, tag = "3")]
    pub equality_field_ids: Vec<i32>,
    /// A deletion vector's blob offset in its Puffin file.
    #[prost(uint64, optional, tag = "4")]
    pub vector_offset: Option<u64>,
    /// A deletion vector's blob length.
    #[prost(uint64, optional, tag = "5")]
    pub vector_length: Option<u64>,
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
    /// First byte of the range read, when the file is split.
    #[prost(uint64, optional, tag = "5")]
    pub range_start: Option<u64>,
    /// End (exclusive) of the range read, when the file is split.
    #[prost(uint64, optional, tag = "6")]
    pub range_end: Option<u64>,
    /// Location as the manifest writes it.
    #[prost(string, tag = "7")]
    pub location: String,
    /// Indices of the scan's delete files this file applies.
    #[prost(uint32, repeated, tag = "8")]
    pub deletes: Vec<u32>,
}

fn encode_delete_file(file: &DeleteFile) -> DeleteFileNode {
    let mut node = DeleteFileNode {
        location: file.location.clone(),
        size_bytes: file.size_bytes,
        ..DeleteFileNode::default()
    };
    match &file.kind {
        DeleteKind::Positions => {}
        DeleteKind::Equality { field_ids } => node.equality_field_ids = field_ids.clone(),
        DeleteKind::Vector { offset, length } => {
            node.vector_offset = Some(*offset);
            node.vector_length = Some(*length);
        }
    }
    node
}

fn decode_delete_file(node: DeleteFileNode) -> DeleteFile {
    let kind = match (node.vector_offset, node.vector_length) {
        (Some(offset), Some(length)) => DeleteKind::Vector { offset, length },
        _ if !node.equality_field_ids.is_empty() => DeleteKind::Equality {
            field_ids: node.equality_field_ids,
        },
        _ => DeleteKind::Positions,
    };
    DeleteFile {
        location: node.location,
        size_bytes: node.size_bytes,
        kind,
    }
}

/// Floe's extension codec; see the module docs.
#[derive(Debug, Default, Clone)]
pub struct FloePhysicalCodec;

impl PhysicalExtensionCodec for FloePhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let node = FloePlanNode::decode(buf)
            .map_err(|e| internal_datafusion_err!("cannot decode Floe plan node: {e}"))?;
        match node.kind {
            Some(FloeNodeKind::IcebergScan(scan)) => self.decode_scan(scan, ctx),
            Some(FloeNodeKind::ShuffleWriter(writer)) => {
                let input = inputs
                    .first()
                    .ok_or_else(|| internal_datafusion_err!("shuffle writer without input"))?;
                let partitioning = parse_protobuf_partitioning(
                    writer.partitioning.as_ref(),
                    ctx,
                    input.schema().as_ref(),
                    self,
                    &DefaultPhysicalProtoConverter {},
                )?;
                Ok(Arc::new(ShuffleWriterExec::try_new(
                    Arc::clone(input),
                    writer.job_id,
                    writer.stage_id as usize,
                    partitioning,
                )?))
            }
            Some(FloeNodeKind::ShuffleReader(reader)) => self.decode_reader(reader, ctx),
            None => Err(internal_datafusion_err!("empty Floe plan node")),
        }
    }

    fn try_encode(&self, node: Arc<dyn ExecutionPlan>, buf: &mut Vec<u8>) -> Result<()> {
        let any = node.as_any();
        let kind = if let Some(scan) = any.downcast_ref::<IcebergScanExec>() {
            FloeNodeKind::IcebergScan(self.encode_scan(scan.spec())?)
        } else if let Some(writer) = any.downcast_ref::<ShuffleWriterExec>() {
            FloeNodeKind::ShuffleWriter(ShuffleWriterNode {
                job_id: writer.job_id().to_string(),
                stage_id: writer.stage_id() as u32,
                partitioning: writer
                    .partitioning()
                    .map(|p| serialize_partitioning(p, self, &DefaultPhysicalProtoConverter {}))
                    .transpose()?,
            })
        } else if let Some(reader) = any.downcast_ref::<ShuffleReaderExec>() {
            FloeNodeKind::ShuffleReader(self.encode_reader(reader)?)
        } else {
            return Err(internal_datafusion_err!(
                "Floe codec cannot encode plan node {}",
                node.name()
            ));
        };
        FloePlanNode { kind: Some(kind) }
            .encode(buf)
            .map_err(|e| internal_datafusion_err!("cannot encode Floe plan node: {e}"))
    }
}

impl FloePhysicalCodec {
    fn decode_scan(
        &self,
        node: IcebergScanNode,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema_proto = node
            .table_schema
            .as_ref()
            .ok_or_else(|| internal_datafusion_err!("Iceberg scan node without a schema"))?;
        let table_schema: Schema = schema_proto.try_into()?;
        let table_schema = Arc::new(table_schema);
        let predicate = node
            .predicate
            .as_ref()
            .map(|p| parse_physical_expr(p, ctx, &table_schema, self))
            .transpose()?;
        let s3 = node
            .s3_json
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| internal_datafusion_err!("invalid S3 settings in scan: {e}"))?;
        let spec = IcebergScanSpec {
            table_name: node.table_name,
            snapshot_id: node.snapshot_id,
            table_schema,
            object_store_url: node.object_store_url,
            s3,
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
                                range: f.range_start.zip(f.range_end).map(|(s, e)| s..e),
                                location: f.location,
                                deletes: f.deletes,
                            })
                        })
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<Vec<_>>>()?,
            projection: node
                .has_projection
                .then(|| node.projection.iter().map(|i| *i as usize).collect()),
            predicate,
            pushdown_filters: node.pushdown_filters,
            reorder_filters: node.reorder_filters,
            limit: node.limit.map(|l| l as usize),
            batch_size: node.batch_size as usize,
            concurrent_files: (node.concurrent_files as usize).max(1),
            files_in_snapshot: node.files_in_snapshot,
            delete_files: node
                .delete_files
                .into_iter()
                .map(decode_delete_file)
                .collect(),
        };
        Ok(Arc::new(IcebergScanExec::try_new(
            spec,
            ctx.runtime_env().as_ref(),
        )?))
    }

    fn encode_scan(&self, spec: &IcebergScanSpec) -> Result<IcebergScanNode> {
        Ok(IcebergScanNode {
            table_name: spec.table_name.clone(),
            snapshot_id: spec.snapshot_id,
            table_schema: Some(spec.table_schema.as_ref().try_into()?),
            object_store_url: spec.object_store_url.clone(),
            s3_json: spec
                .s3
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| internal_datafusion_err!("cannot encode S3 settings: {e}"))?,
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
                            range_start: f.range.as_ref().map(|r| r.start),
                            range_end: f.range.as_ref().map(|r| r.end),
                            location: f.location.clone(),
                            deletes: f.deletes.clone(),
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
            pushdown_filters: spec.pushdown_filters,
            reorder_filters: spec.reorder_filters,
            limit: spec.limit.map(|l| l as u64),
            batch_size: spec.batch_size as u64,
            concurrent_files: spec.concurrent_files as u32,
            files_in_snapshot: spec.files_in_snapshot,
            delete_files: spec.delete_files.iter().map(encode_delete_file).collect(),
        })
    }

    fn decode_reader(
        &self,
        node: ShuffleReaderNode,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema: Schema = node
            .schema
            .as_ref()
            .ok_or_else(|| internal_datafusion_err!("shuffle reader without a schema"))?
            .try_into()?;
        let schema = Arc::new(schema);
        let converter = DefaultPhysicalProtoConverter {};
        let partitioning = parse_protobuf_partitioning(
            node.partitioning.as_ref(),
            ctx,
            &schema,
            self,
            &converter,
        )?
        .ok_or_else(|| internal_datafusion_err!("shuffle reader without partitioning"))?;
        let ordering = LexOrdering::new(parse_physical_sort_exprs(
            &node.ordering,
            ctx,
            &schema,
            self,
            &converter,
        )?);
        let locations = node
            .partitions
            .into_iter()
            .map(|p| {
                p.locations
                    .into_iter()
                    .map(|l| {
                        Ok(ShuffleLocation {
                            ranges: ranges_from_bounds(&l.range_bounds)?,
                            executor_id: l.executor_id,
                            address: l.address,
                            path: l.path,
                            rows: l.rows,
                            bytes: l.bytes,
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let equivalences = ColumnEquivalences {
            constants: node.constant_columns.iter().map(|c| *c as usize).collect(),
            partition_constants: node
                .partition_constant_columns
                .iter()
                .map(|c| *c as usize)
                .collect(),
            equal_groups: node
                .equal_columns
                .iter()
                .map(|group| group.columns.iter().map(|c| *c as usize).collect())
                .collect(),
        };
        Ok(Arc::new(
            ShuffleReaderExec::try_new(
                node.stage_id as usize,
                schema,
                partitioning,
                ordering,
                locations,
                node.broadcast,
            )?
            .with_equivalences(equivalences)?,
        ))
    }

    fn encode_reader(&self, reader: &ShuffleReaderExec) -> Result<ShuffleReaderNode> {
        let converter = DefaultPhysicalProtoConverter {};
        Ok(ShuffleReaderNode {
            stage_id: reader.stage_id() as u32,
            schema: Some(reader.schema().as_ref().try_into()?),
            partitioning: Some(serialize_partitioning(
                reader.partitioning(),
                self,
                &converter,
            )?),
            ordering: match reader.ordering() {
                Some(ordering) => {
                    serialize_physical_sort_exprs(ordering.iter().cloned(), self, &converter)?
                }
                None => Vec::new(),
            },
            partitions: reader
                .locations()
                .iter()
                .map(|locations| ShufflePartitionNode {
                    locations: locations
                        .iter()
                        .map(|l| ShuffleLocationNode {
                            executor_id: l.executor_id.clone(),
                            address: l.address.clone(),
                            path: l.path.clone(),
                            rows: l.rows,
                            bytes: l.bytes,
                            range_bounds: l.ranges.iter().flat_map(|r| [r.start, r.end]).collect(),
                        })
                        .collect(),
                })
                .collect(),
            broadcast: reader.is_broadcast(),
            constant_columns: reader
                .equivalences()
                .constants
                .iter()
                .map(|c| *c as u32)
                .collect(),
            partition_constant_columns: reader
                .equivalences()
                .partition_constants
                .iter()
                .map(|c| *c as u32)
                .collect(),
            equal_columns: reader
                .equivalences()
                .equal_groups
                .iter()
                .map(|group| EqualColumnsNode {
                    columns: group.iter().map(|c| *c as u32).collect(),
                })
                .collect(),
        })
    }
}

/// Byte ranges from their wire form (start, end, start, end, ...).
fn ranges_from_bounds(bounds: &[u64]) -> Result<Vec<std::ops::Range<u64>>> {
    if bounds.len() % 2 != 0 {
        return internal_err!("shuffle location with an odd number of range bounds");
    }
    bounds
        .chunks_exact(2)
        .map(|pair| match pair {
            [start, end] if start <= end => Ok(*start..*end),
            _ => internal_err!("shuffle location with an inverted byte range"),
        })
        .collect()
}
