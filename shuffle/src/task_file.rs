//! A map task's shuffle output: one file per task, whatever the number of output partitions.
//!
//! Rows are encoded per output partition into in-memory Arrow IPC streams. When the encoded
//! bytes of all partitions exceed [`SHUFFLE_WRITE_BUFFER_BYTES`], the largest buffer is appended
//! to the file as a *chunk* (a complete IPC stream: schema, batches, end marker) and a fresh
//! stream starts for that partition; at the end every remaining buffer is appended, in
//! partition order. The index (per output partition, its chunks' byte ranges in order) travels
//! in the task's report to the scheduler and from there in every reader's plan, so a reader
//! seeks straight to its ranges and the file needs no index of its own: Spark's `.index` file
//! lives in the scheduler's map status here.
//!
//! A hash exchange of M map tasks into N partitions thus makes M files, not M × N (Spark moved
//! to one file per map task for the same reason, SPARK-2045), and a task's memory for its
//! output stays bounded however many partitions it writes.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use datafusion::common::{DataFusionError, Result};

/// Encoded bytes a task holds in memory across its output partitions before it appends the
/// largest partition's buffer to its file.
pub const SHUFFLE_WRITE_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// One output partition's part of a task's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShuffleOutputFile {
    /// Output partition the rows belong to.
    pub output_partition: usize,
    /// The task's file, relative to the work dir.
    pub path: String,
    /// Rows written.
    pub rows: u64,
    /// Arrow IPC bytes written (the ranges' lengths added up).
    pub bytes: u64,
    /// Byte ranges of the file holding the partition's chunks, in order.
    pub ranges: Vec<Range<u64>>,
}

/// One output partition's encoded rows not yet in the file, and its chunks that are.
#[derive(Default)]
struct PartitionOutput {
    pending: Option<StreamWriter<Vec<u8>>>,
    rows: u64,
    ranges: Vec<Range<u64>>,
}

impl PartitionOutput {
    fn pending_bytes(&self) -> usize {
        self.pending.as_ref().map_or(0, |w| w.get_ref().len())
    }
}

/// Writes one task's output partitions into one file; see the module docs.
pub struct TaskFileWriter {
    path: PathBuf,
    relative: String,
    schema: SchemaRef,
    file: Option<File>,
    file_len: u64,
    partitions: Vec<PartitionOutput>,
    pending_bytes: usize,
}

impl TaskFileWriter {
    /// A writer of `partitions` outputs to `path` (`relative` to the work dir); the file is
    /// created with the first chunk, so a task with no rows leaves none.
    pub fn new(path: PathBuf, relative: String, schema: SchemaRef, partitions: usize) -> Self {
        Self {
            path,
            relative,
            schema,
            file: None,
            file_len: 0,
            partitions: (0..partitions)
                .map(|_| PartitionOutput::default())
                .collect(),
            pending_bytes: 0,
        }
    }

    /// Adds `batch` to output partition `output`.
    pub fn write(&mut self, output: usize, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let schema = &self.schema;
        let partition = self
            .partitions
            .get_mut(output)
            .ok_or_else(|| DataFusionError::Internal(format!("no output partition {output}")))?;
        // Measured before a new stream writes its schema, so every byte in memory counts.
        let before = partition.pending_bytes();
        if partition.pending.is_none() {
            partition.pending = Some(StreamWriter::try_new(Vec::new(), schema)?);
        }
        if let Some(writer) = partition.pending.as_mut() {
            writer.write(batch)?;
        }
        partition.rows += batch.num_rows() as u64;
        self.pending_bytes += partition.pending_bytes() - before;
        if self.pending_bytes > SHUFFLE_WRITE_BUFFER_BYTES {
            let largest = (0..self.partitions.len())
                .max_by_key(|&p| self.partitions[p].pending_bytes())
                .unwrap_or(output);
            self.append_chunk(largest)?;
        }
        Ok(())
    }

    /// Appends the rest of every partition and returns the non-empty ones.
    pub fn finish(mut self) -> Result<Vec<ShuffleOutputFile>> {
        for output in 0..self.partitions.len() {
            self.append_chunk(output)?;
        }
        if let Some(file) = self.file.as_mut() {
            file.flush().map_err(|e| self.io_error("write", e))?;
        }
        Ok(self
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.rows > 0)
            .map(|(output_partition, p)| ShuffleOutputFile {
                output_partition,
                path: self.relative.clone(),
                rows: p.rows,
                bytes: p.ranges.iter().map(|r| r.end - r.start).sum(),
                ranges: p.ranges.clone(),
            })
            .collect())
    }

    /// Ends partition `output`'s pending stream and appends it to the file as one chunk.
    fn append_chunk(&mut self, output: usize) -> Result<()> {
        let Some(mut writer) = self
            .partitions
            .get_mut(output)
            .and_then(|p| p.pending.take())
        else {
            return Ok(());
        };
        let unfinished = writer.get_ref().len();
        writer.finish()?;
        let bytes = writer.into_inner()?;
        self.pending_bytes = self.pending_bytes.saturating_sub(unfinished);
        if self.file.is_none() {
            let file = File::create(&self.path).map_err(|e| self.io_error("create", e))?;
            self.file = Some(file);
        }
        if let Some(file) = self.file.as_mut() {
            file.write_all(&bytes)
                .map_err(|e| io_error(&self.path, "write", e))?;
        }
        let start = self.file_len;
        self.file_len += bytes.len() as u64;
        self.partitions[output].ranges.push(start..self.file_len);
        Ok(())
    }

    fn io_error(&self, what: &str, err: std::io::Error) -> DataFusionError {
        io_error(&self.path, what, err)
    }
}

fn io_error(path: &Path, what: &str, err: std::io::Error) -> DataFusionError {
    DataFusionError::Execution(format!(
        "cannot {what} shuffle file {}: {err}",
        path.display()
    ))
}

/// Reads the chunks at `ranges` of the file at `path` (each range one Arrow IPC stream), one
/// batch at a time, handing each to `emit` until it returns `false`.
pub fn read_chunks(
    path: &Path,
    ranges: &[Range<u64>],
    mut emit: impl FnMut(RecordBatch) -> bool,
) -> Result<()> {
    let mut file = File::open(path).map_err(|e| io_error(path, "open", e))?;
    for range in ranges {
        file.seek(SeekFrom::Start(range.start))
            .map_err(|e| io_error(path, "seek in", e))?;
        let chunk = std::io::BufReader::new((&file).take(range.end - range.start));
        for batch in StreamReader::try_new(chunk, None)? {
            if !emit(batch?) {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    /// Partitions written interleaved, with a buffer small enough to flush mid-way, read back
    /// from their ranges: each gets exactly its rows, in order, from one file.
    #[test]
    fn each_partition_reads_back_its_rows_from_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let path = dir.path().join("0.arrow");
        let mut writer =
            TaskFileWriter::new(path.clone(), "0.arrow".into(), Arc::clone(&schema), 3);
        // Partition p gets values p, p + 3, p + 6, ...; partition 1 stays empty.
        let rows_per_batch = 100_000i64;
        for round in 0..20i64 {
            for p in [0usize, 2] {
                let values =
                    (0..rows_per_batch).map(|i| (round * rows_per_batch + i) * 3 + p as i64);
                let batch = RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(Int64Array::from_iter_values(values))],
                )
                .unwrap();
                writer.write(p, &batch).unwrap();
            }
        }
        let outputs = writer.finish().unwrap();
        assert_eq!(outputs.len(), 2);
        assert!(outputs.iter().all(|o| o.path == "0.arrow"));
        // 20 x 800 KB per partition: flushed in several chunks, never all held at once.
        assert!(outputs.iter().all(|o| o.ranges.len() > 1), "{outputs:?}");
        let total: u64 = outputs.iter().map(|o| o.bytes).sum();
        assert_eq!(total, std::fs::metadata(&path).unwrap().len());
        for output in outputs {
            let mut values = Vec::new();
            read_chunks(&path, &output.ranges, |batch| {
                let column = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                values.extend(column.values().iter().copied());
                true
            })
            .unwrap();
            let p = output.output_partition as i64;
            let expected: Vec<i64> = (0..20 * rows_per_batch).map(|i| i * 3 + p).collect();
            assert_eq!(values.len() as u64, output.rows);
            assert!(values == expected, "partition {p} read back different rows");
        }
    }
}
