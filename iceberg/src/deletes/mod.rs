//! Row-level deletes on read: position delete files and equality delete files (Iceberg v2) and
//! deletion vectors (v3, Puffin `deletion-vector-v1` blobs).
//!
//! Planning (coordinator, [`DeletePlanner`]) takes the delete files the `iceberg` crate matched to
//! each data file (by partition and by the spec's sequence-number rules: a position delete applies
//! to data of the same or an older sequence number, an equality delete only to older data) and
//! turns them into plain data the plan codec ships: the scan spec holds each distinct delete file
//! once ([`DeleteFile`]) and every data file lists the indices of those that apply to it. The crate
//! does not bind a deletion vector to the one data file it names, so the planner reads the delete
//! manifests itself for each vector's data file and byte range.
//!
//! Execution ([`apply`]) happens in the task that reads the data file: positions (from position
//! delete files and vectors) become a Parquet access plan, so deleted rows are never decoded;
//! equality deletes become a set of keys each batch is filtered against. A delete file is read once
//! per task however many of the task's data files it applies to ([`load::TaskDeletes`]). Data files
//! without deletes take the plain Parquet scan, so a scan whose delete files were all pruned costs
//! nothing extra.

pub mod apply;
pub mod load;
pub mod vector;

use std::collections::HashMap;

use iceberg::io::FileIO;
use iceberg::scan::{FileScanTask, FileScanTaskDeleteFile};
use iceberg::spec::{
    DataContentType, DataFileFormat, ManifestContentType, ManifestList, Snapshot, TableMetadata,
};

use floe_common::error::FloeError;

/// A delete file some data file of a scan must apply.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteFile {
    /// Location as the manifest writes it, e.g. `s3://bucket/t/data/x-deletes.parquet`.
    pub location: String,
    /// Size in bytes, from the manifest.
    pub size_bytes: u64,
    /// What the file holds.
    pub kind: DeleteKind,
}

/// The three kinds of row-level delete.
#[derive(Debug, Clone, PartialEq)]
pub enum DeleteKind {
    /// A Parquet position delete file: `(file_path, pos)` rows, for any data files.
    Positions,
    /// An equality delete file: rows whose values in these columns (by field id) equal a row of
    /// the file are deleted.
    Equality {
        /// Field ids of the compared columns.
        field_ids: Vec<i32>,
    },
    /// A deletion vector of one data file: a `deletion-vector-v1` blob at these bytes of a
    /// Puffin file.
    Vector {
        /// First byte of the blob.
        offset: u64,
        /// Length of the blob.
        length: u64,
    },
}

/// A deletion vector's place in its Puffin file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VectorBlob {
    offset: u64,
    length: u64,
}

/// Turns planned tasks' delete lists into a scan's [`DeleteFile`]s; see the module docs.
#[derive(Debug, Default)]
pub struct DeletePlanner {
    files: Vec<DeleteFile>,
    index_of: HashMap<(String, Option<u64>), u32>,
    /// Deletion vectors by (Puffin location, referenced data file location); loaded only for a
    /// snapshot with vectors.
    vectors: Option<HashMap<(String, String), VectorBlob>>,
}

impl DeletePlanner {
    /// A planner for `snapshot`. `tasks` are its planned tasks: if any carries a deletion vector
    /// the snapshot's delete manifests are read here to place each vector.
    pub async fn try_new(
        metadata: &TableMetadata,
        snapshot: &Snapshot,
        file_io: &FileIO,
        tasks: &[FileScanTask],
    ) -> Result<Self, FloeError> {
        let has_vectors = tasks
            .iter()
            .flat_map(|task| &task.deletes)
            .any(is_deletion_vector);
        let vectors = if has_vectors {
            Some(deletion_vectors(metadata, snapshot, file_io).await?)
        } else {
            None
        };
        Ok(Self {
            vectors,
            ..Self::default()
        })
    }

    /// Indices (into [`Self::into_files`]) of the delete files `task`'s data file must apply.
    pub fn deletes_of(&mut self, task: &FileScanTask) -> Result<Vec<u32>, FloeError> {
        let mut indices = Vec::new();
        for delete in &task.deletes {
            let Some(file) = self.resolve(delete, &task.data_file_path)? else {
                continue;
            };
            let key = (
                file.location.clone(),
                match &file.kind {
                    DeleteKind::Vector { offset, .. } => Some(*offset),
                    _ => None,
                },
            );
            let next = self.files.len() as u32;
            let index = *self.index_of.entry(key).or_insert(next);
            if index == next {
                self.files.push(file);
            }
            if !indices.contains(&index) {
                indices.push(index);
            }
        }
        Ok(indices)
    }

    /// The distinct delete files, in index order.
    pub fn into_files(self) -> Vec<DeleteFile> {
        self.files
    }

    /// What `delete` is for the data file at `data_location`; `None` for a deletion vector of
    /// another data file (the crate offers every vector of a partition).
    fn resolve(
        &self,
        delete: &FileScanTaskDeleteFile,
        data_location: &str,
    ) -> Result<Option<DeleteFile>, FloeError> {
        let kind = match delete.file_type {
            DataContentType::EqualityDeletes => {
                let field_ids = delete.equality_ids.clone().unwrap_or_default();
                if field_ids.is_empty() {
                    return Err(FloeError::plan(format!(
                        "equality delete file {} names no equality columns",
                        delete.file_path
                    )));
                }
                DeleteKind::Equality { field_ids }
            }
            DataContentType::PositionDeletes if is_deletion_vector(delete) => {
                let vectors = self.vectors.as_ref().ok_or_else(|| {
                    FloeError::plan(format!("deletion vector {} not planned", delete.file_path))
                })?;
                let key = (delete.file_path.clone(), data_location.to_string());
                match vectors.get(&key) {
                    Some(blob) => DeleteKind::Vector {
                        offset: blob.offset,
                        length: blob.length,
                    },
                    None => return Ok(None),
                }
            }
            DataContentType::PositionDeletes => {
                if !delete.file_path.ends_with(".parquet") {
                    return Err(FloeError::NotSupported(format!(
                        "position delete file {}: only Parquet position delete files can be read",
                        delete.file_path
                    )));
                }
                DeleteKind::Positions
            }
            DataContentType::Data => return Ok(None),
        };
        Ok(Some(DeleteFile {
            location: delete.file_path.clone(),
            size_bytes: delete.file_size_in_bytes,
            kind,
        }))
    }
}

/// A deletion vector is a position delete stored in a Puffin file (the task's delete entry does
/// not carry the format, only the path).
fn is_deletion_vector(delete: &FileScanTaskDeleteFile) -> bool {
    delete.file_type == DataContentType::PositionDeletes && delete.file_path.ends_with(".puffin")
}

/// Every live deletion vector of `snapshot`, by (Puffin location, data file location).
async fn deletion_vectors(
    metadata: &TableMetadata,
    snapshot: &Snapshot,
    file_io: &FileIO,
) -> Result<HashMap<(String, String), VectorBlob>, FloeError> {
    let mut vectors = HashMap::new();
    let bytes = file_io.new_input(snapshot.manifest_list())?.read().await?;
    let list = ManifestList::parse_with_version(&bytes, metadata.format_version())?;
    for manifest_file in list.entries() {
        if manifest_file.content != ManifestContentType::Deletes {
            continue;
        }
        let manifest = manifest_file.load_manifest(file_io).await?;
        for entry in manifest.entries().iter().filter(|entry| entry.is_alive()) {
            let file = entry.data_file();
            if file.file_format() != DataFileFormat::Puffin {
                continue;
            }
            let missing = |what: &str| {
                FloeError::plan(format!(
                    "deletion vector in {} has no {what} in its manifest entry",
                    file.file_path()
                ))
            };
            let data_file = file
                .referenced_data_file()
                .ok_or_else(|| missing("referenced_data_file"))?;
            let offset = file
                .content_offset()
                .ok_or_else(|| missing("content_offset"))?;
            let length = file
                .content_size_in_bytes()
                .ok_or_else(|| missing("content_size_in_bytes"))?;
            vectors.insert(
                (file.file_path().to_string(), data_file),
                VectorBlob {
                    offset: offset as u64,
                    length: length as u64,
                },
            );
        }
    }
    Ok(vectors)
}
