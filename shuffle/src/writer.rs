//! `ShuffleWriterExec`: the root of every stage; writes a task's output as Arrow IPC files.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, GenericByteViewArray, RecordBatch, StringArray, UInt32Array,
    UInt64Array,
};
use arrow::datatypes::ByteViewType;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::repartition::BatchPartitioner;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use futures::StreamExt;

use super::task_file::{ShuffleOutputFile, TaskFileWriter};
use super::{ShuffleEnv, validate_job_id};

/// Runs one partition of its input and writes the rows to the task's shuffle file, split into
/// the output partitions of `partitioning` (hash or round robin), or as one when `None`
/// ([`super::task_file`]: one file per task, with a byte range index).
#[derive(Debug)]
pub struct ShuffleWriterExec {
    input: Arc<dyn ExecutionPlan>,
    job_id: String,
    stage_id: usize,
    partitioning: Option<Partitioning>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl ShuffleWriterExec {
    /// A writer for `stage_id` of `job_id` over `input`.
    pub fn try_new(
        input: Arc<dyn ExecutionPlan>,
        job_id: impl Into<String>,
        stage_id: usize,
        partitioning: Option<Partitioning>,
    ) -> Result<Self> {
        let job_id = job_id.into();
        validate_job_id(&job_id)?;
        if let Some(Partitioning::UnknownPartitioning(_)) = partitioning {
            return internal_err!("a shuffle cannot write unknown partitioning");
        }
        let properties = PlanProperties::new(
            EquivalenceProperties::new(summary_schema()),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Ok(Self {
            input,
            job_id,
            stage_id,
            partitioning,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The plan whose rows are written.
    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }

    /// The job this stage belongs to.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// The stage this writer ends.
    pub fn stage_id(&self) -> usize {
        self.stage_id
    }

    /// How rows are split into output partitions (`None`: one file per task).
    pub fn partitioning(&self) -> Option<&Partitioning> {
        self.partitioning.as_ref()
    }

    /// Output partitions each task writes.
    pub fn output_partition_count(&self) -> usize {
        self.partitioning
            .as_ref()
            .map_or(1, Partitioning::partition_count)
    }

    /// Runs input partition `partition` to completion and returns the files written.
    pub async fn write_partition(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<Vec<ShuffleOutputFile>> {
        let env = ShuffleEnv::of(&context)?;
        let relative_dir = format!("{}/{}", self.job_id, self.stage_id);
        let dir = env.work_dir.join(&relative_dir);
        std::fs::create_dir_all(&dir).map_err(|e| {
            DataFusionError::Execution(format!("cannot create shuffle dir {}: {e}", dir.display()))
        })?;
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let bytes_written = MetricBuilder::new(&self.metrics).counter("bytes_written", partition);
        let repart_time = MetricBuilder::new(&self.metrics).subset_time("repart_time", partition);

        // A name of its own per run of the task: a relaunch never truncates a file that an
        // earlier, aborted run may still be writing, or that a report already points into.
        let name = format!("{partition}-{}.arrow", uuid::Uuid::new_v4().simple());
        let mut file = TaskFileWriter::new(
            dir.join(&name),
            format!("{relative_dir}/{name}"),
            self.input.schema(),
            self.output_partition_count(),
        );
        let mut partitioner = match &self.partitioning {
            Some(partitioning) => Some(BatchPartitioner::try_new(
                partitioning.clone(),
                repart_time,
                partition,
                self.input.output_partitioning().partition_count(),
            )?),
            None => None,
        };
        let mut stream = self.input.execute(partition, context)?;
        while let Some(batch) = stream.next().await {
            // Operators that always have a batch ready never return to the runtime; yielding
            // now and then lets a cancelled task actually stop.
            tokio::task::consume_budget().await;
            let batch = batch?;
            output_rows.add(batch.num_rows());
            let mut write = |output: usize, batch: RecordBatch| -> Result<()> {
                file.write(output, &compact_view_columns(&batch)?)
            };
            match partitioner.as_mut() {
                Some(partitioner) => partitioner.partition(batch, write)?,
                None => write(0, batch)?,
            }
        }
        let outputs = file.finish()?;
        bytes_written.add(outputs.iter().map(|o| o.bytes as usize).sum());
        Ok(outputs)
    }
}

/// A view column keeping more than this many times the bytes its rows use is compacted.
const VIEW_BUFFER_SLACK: usize = 2;

/// `batch` with its string and binary view columns copied out of oversized buffers.
///
/// View arrays share data buffers with the arrays they were filtered, taken or sliced from, and
/// IPC writes every buffer an array references: one 10-row batch out of a join over long
/// strings can drag megabytes along, once per batch (TPC-DS q72 wrote gigabytes of shuffle
/// files for a few thousand rows this way).
fn compact_view_columns(batch: &RecordBatch) -> Result<RecordBatch> {
    fn compacted<T: ByteViewType + ?Sized>(array: &GenericByteViewArray<T>) -> Option<ArrayRef> {
        let buffers: usize = array.data_buffers().iter().map(|b| b.len()).sum();
        let used = array.total_buffer_bytes_used();
        (buffers > used.saturating_mul(VIEW_BUFFER_SLACK).max(4096))
            .then(|| Arc::new(array.gc()) as ArrayRef)
    }
    let mut changed = false;
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|column| {
            let replacement = match column.data_type() {
                DataType::Utf8View => compacted(column.as_string_view()),
                DataType::BinaryView => compacted(column.as_binary_view()),
                _ => None,
            };
            changed |= replacement.is_some();
            replacement.unwrap_or_else(|| Arc::clone(column))
        })
        .collect();
    if !changed {
        return Ok(batch.clone());
    }
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// The one batch `execute` returns: the files a task wrote.
fn summary_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("output_partition", DataType::UInt32, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("bytes", DataType::UInt64, false),
    ]))
}

fn summary_batch(files: &[ShuffleOutputFile]) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        summary_schema(),
        vec![
            Arc::new(UInt32Array::from_iter_values(
                files.iter().map(|f| f.output_partition as u32),
            )),
            Arc::new(StringArray::from_iter_values(
                files.iter().map(|f| f.path.as_str()),
            )),
            Arc::new(UInt64Array::from_iter_values(files.iter().map(|f| f.rows))),
            Arc::new(UInt64Array::from_iter_values(files.iter().map(|f| f.bytes))),
        ],
    )?)
}

impl DisplayAs for ShuffleWriterExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.partitioning {
            Some(partitioning) => write!(
                f,
                "ShuffleWriterExec: stage={}, partitioning={partitioning}",
                self.stage_id
            ),
            None => write!(f, "ShuffleWriterExec: stage={}", self.stage_id),
        }
    }
}

impl ExecutionPlan for ShuffleWriterExec {
    fn name(&self) -> &str {
        "ShuffleWriterExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(input) = children.pop() else {
            return internal_err!("ShuffleWriterExec takes one child");
        };
        Ok(Arc::new(Self::try_new(
            input,
            self.job_id.clone(),
            self.stage_id,
            self.partitioning.clone(),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let writer = Self::try_new(
            Arc::clone(&self.input),
            self.job_id.clone(),
            self.stage_id,
            self.partitioning.clone(),
        )?;
        let stream = futures::stream::once(async move {
            let files = writer.write_partition(partition, context).await?;
            summary_batch(&files)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            summary_schema(),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use arrow::array::StringViewArray;

    use super::*;

    #[test]
    fn a_slice_of_long_strings_is_written_without_its_parents_buffers() {
        let long: Vec<String> = (0..1000).map(|i| format!("{i:0>200}")).collect();
        let array: ArrayRef = Arc::new(StringViewArray::from_iter_values(&long));
        let schema = Arc::new(Schema::new(vec![Field::new(
            "s",
            DataType::Utf8View,
            false,
        )]));
        let batch = RecordBatch::try_new(schema, vec![array])
            .unwrap()
            .slice(10, 2);
        let buffer_bytes = |batch: &RecordBatch| -> usize {
            let array = batch.column(0).as_string_view();
            array.data_buffers().iter().map(|b| b.len()).sum()
        };
        assert!(buffer_bytes(&batch) >= 200_000);
        let compacted = compact_view_columns(&batch).unwrap();
        assert!(
            buffer_bytes(&compacted) <= 400,
            "{}",
            buffer_bytes(&compacted)
        );
        assert_eq!(compacted.column(0).as_string_view().value(1), long[11]);
    }
}
