//! `IcebergSink`: writes a statement's rows as Parquet data files and commits them as one
//! Iceberg snapshot.
//!
//! Files are written with the `iceberg` crate's writers (which record the column metrics that
//! later scans prune with) into the table's data location, split by the table's partition spec.
//! Nothing is visible to readers until the single fast-append commit at the end ([`crate::commit`]:
//! in turn with this process's other commits, retried against other writers); a failure leaves
//! no half-written table, and the statement's files are deleted.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::common::Result as DFResult;
use datafusion::datasource::sink::DataSink;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;
use iceberg::arrow::{FieldMatchMode, RecordBatchPartitionSplitter};
use iceberg::spec::{DataFile, DataFileFormat};
use iceberg::table::Table;
use iceberg::writer::IcebergWriterBuilder;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::partitioning::unpartitioned_writer::UnpartitionedWriter;

use crate::catalogs::FloeCatalog;
use crate::commit::{commit_append, delete_files};
use floe_common::error::iceberg_to_df;

/// Appends rows to one Iceberg table in one snapshot.
#[derive(Debug)]
pub struct IcebergSink {
    catalog: Arc<FloeCatalog>,
    table: Table,
    schema: SchemaRef,
}

impl IcebergSink {
    /// A sink appending to `table` through `catalog`.
    pub fn new(catalog: Arc<FloeCatalog>, table: Table, schema: SchemaRef) -> Self {
        Self {
            catalog,
            table,
            schema,
        }
    }
}

impl DisplayAs for IcebergSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "IcebergSink: table={}", self.table.identifier())
    }
}

/// Writers for unpartitioned and partitioned tables behind one interface.
// One writer per statement; the size difference between variants doesn't matter.
#[allow(clippy::large_enum_variant)]
enum PartitionedDataWriter<B: IcebergWriterBuilder> {
    Unpartitioned(UnpartitionedWriter<B>),
    Partitioned(FanoutWriter<B>, RecordBatchPartitionSplitter),
}

impl<B: IcebergWriterBuilder> PartitionedDataWriter<B> {
    async fn write(&mut self, batch: RecordBatch) -> iceberg::Result<()> {
        match self {
            Self::Unpartitioned(writer) => writer.write(batch).await,
            Self::Partitioned(writer, splitter) => {
                for (key, part) in splitter.split(&batch)? {
                    writer.write(key, part).await?;
                }
                Ok(())
            }
        }
    }

    async fn close(self) -> iceberg::Result<Vec<DataFile>> {
        match self {
            Self::Unpartitioned(writer) => writer.close().await,
            Self::Partitioned(writer, _) => writer.close().await,
        }
    }
}

/// Writes every batch of `data`, cast to `schema`; the number of rows.
async fn write_batches<B: IcebergWriterBuilder>(
    writer: &mut PartitionedDataWriter<B>,
    data: &mut SendableRecordBatchStream,
    schema: &SchemaRef,
) -> DFResult<u64> {
    let mut rows = 0u64;
    while let Some(batch) = data.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        rows += batch.num_rows() as u64;
        let batch = cast_to_schema(&batch, schema)?;
        writer.write(batch).await.map_err(iceberg_to_df)?;
    }
    Ok(rows)
}

/// `batch` with each column cast to the type `schema` gives it (columns match by position).
fn cast_to_schema(batch: &RecordBatch, schema: &SchemaRef) -> DFResult<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                arrow::compute::cast(column, field.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

#[async_trait]
impl DataSink for IcebergSink {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> DFResult<u64> {
        let metadata = self.table.metadata();
        let properties = metadata.table_properties().map_err(iceberg_to_df)?;
        let iceberg_schema = Arc::clone(metadata.current_schema());
        let parquet =
            ParquetWriterBuilder::from_table_properties(&properties, Arc::clone(&iceberg_schema))
                // DataFusion's insert projection drops field-id metadata; names match the table's.
                .with_match_mode(FieldMatchMode::Name);
        let rolling = RollingFileWriterBuilder::new(
            parquet,
            properties.write_target_file_size_bytes,
            self.table.file_io().clone(),
            DefaultLocationGenerator::new(metadata).map_err(iceberg_to_df)?,
            DefaultFileNameGenerator::new(
                uuid::Uuid::new_v4().to_string(),
                None,
                DataFileFormat::Parquet,
            ),
        );
        let data_files_builder = DataFileWriterBuilder::new(rolling);
        let spec = Arc::clone(metadata.default_partition_spec());
        let mut writer = if spec.is_unpartitioned() {
            PartitionedDataWriter::Unpartitioned(UnpartitionedWriter::new(data_files_builder))
        } else {
            let splitter = RecordBatchPartitionSplitter::try_new_with_computed_values(
                Arc::clone(&iceberg_schema),
                spec,
            )
            .map_err(iceberg_to_df)?;
            PartitionedDataWriter::Partitioned(FanoutWriter::new(data_files_builder), splitter)
        };

        // Queries see strings as view types; the writers take the stored types.
        let write_schema = super::arrow_schema_of(&iceberg_schema)?;
        let written = write_batches(&mut writer, &mut data, &write_schema).await;
        let closed = writer.close().await.map_err(iceberg_to_df);
        let (rows, data_files) = match (written, closed) {
            (Ok(rows), Ok(data_files)) => (rows, data_files),
            (Err(err), Ok(data_files)) => {
                // The input failed (or a write did): the files so far are no one's.
                let paths: Vec<String> = data_files
                    .iter()
                    .map(|file| file.file_path().to_string())
                    .collect();
                delete_files(&self.table, &paths).await;
                return Err(err);
            }
            (Err(err), Err(_)) | (Ok(_), Err(err)) => return Err(err),
        };
        if data_files.is_empty() {
            return Ok(0);
        }
        commit_append(self.catalog.iceberg.as_ref(), &self.table, data_files)
            .await
            .map_err(iceberg_to_df)?;
        Ok(rows)
    }
}
