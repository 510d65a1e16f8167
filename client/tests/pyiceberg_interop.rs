//! Interoperability with PyIceberg, an Iceberg implementation nobody here wrote: both use the
//! same SQLite catalog and warehouse, and each reads what the other wrote.
//!
//! `.ci/run` installs PyIceberg in a venv and exports `FLOE_TEST_PYTHON`.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "support/processes.rs"]
mod processes;

use std::process::Command;

fn run_python(args: &[&str]) -> String {
    processes::run_interop_script("pyiceberg_tables.py", args)
}

fn floe_json(dir: &std::path::Path, sql: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["--format", "json", "-q", "-c", sql])
        .current_dir(dir)
        .env_remove("FLOE_CONFIG")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "floe failed on {sql}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn floe_reads_what_pyiceberg_wrote_including_schema_evolution() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("floe-warehouse");
    std::fs::create_dir_all(&warehouse).unwrap();
    run_python(&["write", warehouse.to_str().unwrap()]);

    let out = floe_json(
        dir.path(),
        "SELECT id, town, CAST(fare AS VARCHAR) AS fare, CAST(day AS VARCHAR) AS day, tip FROM local.pyi.trips ORDER BY id",
    );
    // `city` was renamed to `town` after the first file was written: matched by field id.
    // `tip` was added later: NULL in the old file.
    assert_eq!(
        out.trim(),
        r#"[{"id":1,"town":"Oslo","fare":"12.50","day":"2024-05-01"},{"id":2,"town":"Lima","fare":"7.25","day":"2024-05-02"},{"id":3,"fare":"0.00","day":"2024-05-03"},{"id":4,"town":"Pune","fare":"3.10","day":"2024-05-04","tip":1.5}]"#
    );
    let out = floe_json(
        dir.path(),
        "SELECT count(*) AS n FROM local.pyi.trips WHERE town = 'Oslo'",
    );
    assert_eq!(out.trim(), r#"[{"n":1}]"#);
}

#[test]
fn pyiceberg_reads_what_floe_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("floe-warehouse");
    floe_json(
        dir.path(),
        "CREATE SCHEMA shop;
         CREATE TABLE shop.orders (id BIGINT, item VARCHAR, price DECIMAL(10, 2), placed DATE, at TIMESTAMP WITH TIME ZONE, ok BOOLEAN)
           PARTITIONED BY (day(placed), bucket(8, id));
         INSERT INTO shop.orders VALUES
           (1, 'tea', 3.50, DATE '2024-06-01', TIMESTAMP '2024-06-01 10:00:00+00:00', true),
           (2, 'cake', 12.00, DATE '2024-06-02', TIMESTAMP '2024-06-02 11:30:00+00:00', false);
         INSERT INTO shop.orders SELECT id + 10, item, price, placed, at, ok FROM shop.orders;",
    );
    let rows = run_python(&["read", warehouse.to_str().unwrap(), "shop.orders"]);
    let expected = [
        r#"{"at": "2024-06-01 10:00:00+00:00", "id": 1, "item": "tea", "ok": true, "placed": "2024-06-01", "price": "3.50"}"#,
        r#"{"at": "2024-06-01 10:00:00+00:00", "id": 11, "item": "tea", "ok": true, "placed": "2024-06-01", "price": "3.50"}"#,
        r#"{"at": "2024-06-02 11:30:00+00:00", "id": 12, "item": "cake", "ok": false, "placed": "2024-06-02", "price": "12.00"}"#,
        r#"{"at": "2024-06-02 11:30:00+00:00", "id": 2, "item": "cake", "ok": false, "placed": "2024-06-02", "price": "12.00"}"#,
    ];
    assert_eq!(rows.lines().collect::<Vec<_>>(), expected);
}
