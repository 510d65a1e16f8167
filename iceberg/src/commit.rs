//! Committing a statement's snapshot: one commit at a time per table in this process, retried
//! against other writers, and no data files left behind when it fails for good.
//!
//! Iceberg commits are optimistic. A writer builds the new metadata from the table version it
//! read, and the catalog takes it only if the table is still at that version (a SQL catalog
//! compares the metadata location in its `UPDATE`, a REST catalog answers 409). Two appends never
//! truly conflict, so a refused append is retried on the table's new version:
//! `Transaction::commit` reloads the table, applies the append again and commits, as often and
//! as patiently as the table's `commit.retry.*` properties say (Iceberg's defaults otherwise: 4
//! retries, waits from 100 ms doubling up to 60 s, 30 min in all), which is what Spark, Trino and
//! PyIceberg do.
//!
//! All of a Floe cluster's commits run in its scheduler (the sink sits above the distributed part
//! of the plan), so the cluster settles contention between its own statements before the catalog
//! sees it: a commit lock per table makes them take turns, and only other processes' commits can
//! make one retry. Without the lock, statements finishing together retry in lockstep (the retry
//! waits have no jitter) and, with four retries, some of eight concurrent INSERTs failed.
//!
//! A commit the catalog definitely refused deletes the statement's data files, which no snapshot
//! references. One whose outcome is unknown (a REST catalog's 5xx) keeps them: the snapshot may
//! have been committed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use iceberg::spec::{DataFile, TableProperties};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, ErrorKind, TableIdent};

/// The commit locks of this process, one per table with a commit under way.
static COMMIT_LOCKS: CommitLocks = CommitLocks::new();

/// Per-table async locks, held only while some statement commits to or waits for that table.
struct CommitLocks {
    tables: Mutex<Option<HashMap<TableIdent, Weak<tokio::sync::Mutex<()>>>>>,
}

impl CommitLocks {
    const fn new() -> Self {
        Self {
            tables: Mutex::new(None),
        }
    }

    /// The lock of `table`, shared with every statement committing to it now.
    fn lock_for(&self, table: &TableIdent) -> Arc<tokio::sync::Mutex<()>> {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        let tables = tables.get_or_insert_with(HashMap::new);
        // Forget locks no statement holds, so the map is as large as the commits in flight.
        tables.retain(|_, lock| lock.strong_count() > 0);
        if let Some(lock) = tables.get(table).and_then(Weak::upgrade) {
            return lock;
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        tables.insert(table.clone(), Arc::downgrade(&lock));
        lock
    }
}

/// Appends `data_files` to `table` in one snapshot, waiting for this process's other commits to
/// the table and retrying against other writers; see the module docs. On failure the files are
/// deleted when the catalog definitely did not take them.
pub async fn commit_append(
    catalog: &dyn Catalog,
    table: &Table,
    data_files: Vec<DataFile>,
) -> iceberg::Result<Table> {
    let paths: Vec<String> = data_files
        .iter()
        .map(|file| file.file_path().to_string())
        .collect();
    match commit_append_in_turn(catalog, table, data_files).await {
        Err(err) if err.kind() == ErrorKind::CatalogCommitConflicts => {
            delete_files(table, &paths).await;
            Err(explain_conflict(table, err))
        }
        // Anything else may have happened after the catalog took the snapshot: keep the files.
        result => result,
    }
}

async fn commit_append_in_turn(
    catalog: &dyn Catalog,
    table: &Table,
    data_files: Vec<DataFile>,
) -> iceberg::Result<Table> {
    let lock = COMMIT_LOCKS.lock_for(table.identifier());
    let _turn = lock.lock().await;
    let transaction = Transaction::new(table);
    // Files are freshly named by a UUID, so the duplicate check (which reads every manifest of
    // the current snapshot) cannot find anything.
    let append = transaction
        .fast_append()
        .with_check_duplicate(false)
        .add_data_files(data_files);
    let transaction = append.apply(transaction)?;
    // Reloads the table, re-applies the append and commits, retrying by `commit.retry.*`.
    transaction.commit(catalog).await
}

/// Deletes files a failed statement wrote; a file left behind is only unreferenced storage, so
/// failures are logged, not raised over the commit's own error.
pub async fn delete_files(table: &Table, paths: &[String]) {
    for path in paths {
        if let Err(err) = table.file_io().delete(path).await {
            log::warn!("cannot delete {path}, written by a statement that failed: {err}");
        }
    }
}

/// A commit the catalog refused on every attempt, with what a user needs: which table, how
/// often it was tried, and what to change; its kind (and so its status code) stays the catalog's.
fn explain_conflict(table: &Table, err: iceberg::Error) -> iceberg::Error {
    let retries = table.metadata().table_properties().map_or(
        TableProperties::PROPERTY_COMMIT_NUM_RETRIES_DEFAULT,
        |props| props.commit_num_retries,
    );
    iceberg::Error::new(
        ErrorKind::CatalogCommitConflicts,
        format!(
            "commit to table {} failed: other writers committed first on each of {} attempts \
             (its data files were deleted); run the statement again, or raise the table \
             property {} (now {retries})",
            table.identifier(),
            retries + 1,
            TableProperties::PROPERTY_COMMIT_NUM_RETRIES,
        ),
    )
    .with_source(err)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_lock_per_table_while_it_is_held() {
        let locks = CommitLocks::new();
        let a = TableIdent::from_strs(["ns", "a"]).unwrap();
        let b = TableIdent::from_strs(["ns", "b"]).unwrap();
        let first = locks.lock_for(&a);
        assert!(Arc::ptr_eq(&first, &locks.lock_for(&a)));
        assert!(!Arc::ptr_eq(&first, &locks.lock_for(&b)));
        drop(first);
        // Nobody holds a's lock: the next commit gets a fresh one and the map forgets the old.
        let _again = locks.lock_for(&a);
        let tables = locks.tables.lock().unwrap();
        assert_eq!(tables.as_ref().unwrap().len(), 1);
    }
}
