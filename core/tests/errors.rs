//! Bad input gets a clear error that names the thing, and changes nothing.
#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use crate::common::Warehouse;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_are_named() {
    let wh = Warehouse::new().await;
    let err = wh.error("SELECT * FROM nowhere.db.t").await;
    assert!(err.contains("catalog not found: nowhere"), "{err}");
    let err = wh.error("SELECT * FROM local.missing_ns.t").await;
    assert!(
        err.contains("namespace not found: local.missing_ns"),
        "{err}"
    );
    let err = wh.error("SELECT * FROM missing_table").await;
    assert!(err.contains("local.default.missing_table"), "{err}");
    let err = wh.error("USE nowhere.db").await;
    assert!(err.contains("nowhere"), "{err}");
    let err = wh.error("SHOW TABLES IN missing_ns").await;
    assert!(err.contains("local.missing_ns"), "{err}");
    let err = wh.error("CREATE TABLE missing_ns.t (a INT)").await;
    assert!(err.contains("local.missing_ns"), "{err}");
    let err = wh.error("DROP TABLE missing_table").await;
    assert!(err.contains("local.default.missing_table"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syntax_errors_carry_a_position() {
    let wh = Warehouse::new().await;
    let err = wh.error("SELECT 1 FORM t").await;
    assert!(err.contains("Line: 1, Column"), "{err}");
    let err = wh
        .error("CREATE TABLE t (a INT) PARTITIONED BY (weekly(a))")
        .await;
    assert!(err.contains("weekly"), "{err}");
    let err = wh.error("CREATE TABLE t (a INT) PARTITIONED BY (b)").await;
    assert!(err.contains("`b`"), "{err}");
    // Nothing was created by the failed statements.
    let tables = wh.text("SHOW TABLES").await;
    assert!(!tables.contains("| t "), "{tables}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_types_on_insert_change_nothing() {
    let wh = Warehouse::new().await;
    wh.run("CREATE TABLE t (id INT, d DATE)").await;
    wh.run("INSERT INTO t VALUES (1, DATE '2024-01-01')").await;
    let err = wh
        .error("INSERT INTO t VALUES ('not a number', DATE '2024-01-01')")
        .await;
    assert!(err.to_lowercase().contains("cast"), "{err}");
    let err = wh.error("INSERT INTO t VALUES (1, 2, 3)").await;
    assert!(
        err.contains("3 values") && err.contains("expected 2"),
        "{err}"
    );
    let text = wh.text("SELECT count(*) AS n FROM t").await;
    assert!(text.contains("| 1 |"), "{text}");
    let err = wh.error("CREATE TABLE t (x INT)").await;
    assert!(err.contains("already exists: local.default.t"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_data_file_is_named() {
    let wh = Warehouse::new().await;
    wh.run("CREATE TABLE t (id INT)").await;
    wh.run("INSERT INTO t VALUES (1), (2)").await;
    let (_, scans) = wh.run_with_scans("SELECT * FROM t").await;
    let path = common::scan_of(&scans[0]).spec().file_groups[0][0]
        .path
        .clone();
    std::fs::remove_file(format!("/{path}")).unwrap();
    let err = wh.error("SELECT * FROM t").await;
    let file_name = path.rsplit('/').next().unwrap();
    assert!(
        err.contains(file_name),
        "error does not name {file_name}: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_ctas_leaves_no_table() {
    let wh = Warehouse::new().await;
    let err = wh.error("CREATE TABLE t AS SELECT 1 / 0 AS x").await;
    assert!(err.to_lowercase().contains("divide by zero"), "{err}");
    let tables = wh.text("SHOW TABLES").await;
    assert!(!tables.contains("| t "), "{tables}");
}

/// The Parquet files under `dir`, sorted.
fn parquet_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// An INSERT whose input fails after some of its rows were written leaves no data files behind
/// and no rows in the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_insert_deletes_the_files_it_wrote() {
    let wh = Warehouse::new().await;
    wh.run("CREATE TABLE t (x INT)").await;
    wh.run("INSERT INTO t VALUES (1)").await;
    let before = parquet_files(wh.dir.path());
    assert_eq!(before.len(), 1, "{before:?}");
    // Rows 1..19999 reach the writer in the first batches; row 20000 fails the cast.
    let err = wh
        .error(
            "INSERT INTO t SELECT CAST(CASE WHEN value < 20000 THEN '1' ELSE 'x' END AS INT) \
             FROM generate_series(1, 30000)",
        )
        .await;
    assert!(err.contains("Cannot cast string 'x'"), "{err}");
    assert_eq!(parquet_files(wh.dir.path()), before);
    let count = wh.text("SELECT count(*) AS n FROM t").await;
    assert!(count.contains("| 1 "), "{count}");
}
