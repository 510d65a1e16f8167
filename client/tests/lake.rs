//! The lake as other engines write it. Floe and implementations nobody here wrote read each
//! other's tables:
//! - PyIceberg, over a shared SQLite catalog and local warehouse;
//! - DuckDB's iceberg extension, over a real Iceberg REST catalog and S3 (SeaweedFS
//!   `weed mini`), including its merge-on-read `DELETE` and `UPDATE` (position delete files);
//! - botocore, recomputing the SigV4 signature of every request Floe sends a signed catalog.
//!
//! `.ci/run` installs PyIceberg, DuckDB and SeaweedFS in a venv and exports `FLOE_TEST_PYTHON`.
#![allow(clippy::unwrap_used, missing_docs)]

use crate::processes;
use crate::weed;

use std::process::Command;

fn run_python(args: &[&str]) -> String {
    processes::run_interop_script("pyiceberg_tables.py", args)
}

/// Runs `sql` with `floe` in `dir` and `args` before `-c`, without AWS credentials in its
/// environment.
fn floe(dir: &std::path::Path, args: &[&str], sql: &str) -> std::process::Output {
    floe_with_env(dir, args, sql, &[])
}

/// [`floe`] with `envs` set.
fn floe_with_env(
    dir: &std::path::Path,
    args: &[&str],
    sql: &str,
    envs: &[(&str, &str)],
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(args)
        .args(["--format", "json", "-q", "-c", sql])
        .current_dir(dir)
        .env_remove("FLOE_CONFIG")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .envs(envs.iter().copied())
        .output()
        .unwrap()
}

/// The JSON rows of `sql`, asserting it succeeded.
fn floe_rows(dir: &std::path::Path, args: &[&str], sql: &str) -> String {
    let output = floe(dir, args, sql);
    assert!(
        output.status.success(),
        "floe failed on {sql}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `sql` on the default local catalog.
fn floe_json(dir: &std::path::Path, sql: &str) -> String {
    floe_rows(dir, &[], sql)
}

/// `sql` with `floe --config floe.toml` in `dir`.
fn floe_with_config(dir: &std::path::Path, sql: &str) -> String {
    floe_rows(dir, &["--config", "floe.toml"], sql)
}

/// The error message of `sql` with `floe --config floe.toml`, asserting it failed.
fn floe_error(dir: &std::path::Path, sql: &str) -> String {
    let output = floe(dir, &["--config", "floe.toml"], sql);
    assert!(!output.status.success(), "{sql} should fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A directory whose default warehouse PyIceberg filled with `pyiceberg_tables.py {command}`.
fn pyiceberg_warehouse(command: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("floe-warehouse");
    std::fs::create_dir_all(&warehouse).unwrap();
    run_python(&[command, warehouse.to_str().unwrap()]);
    dir
}

#[test]
fn floe_reads_what_pyiceberg_wrote_including_schema_evolution() {
    let dir = pyiceberg_warehouse("write");

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
fn floe_resolves_nested_renames_and_files_without_field_ids() {
    let dir = pyiceberg_warehouse("write_types");
    // `migrated.parquet` has no field ids; the name mapping PyIceberg's `add_files` recorded
    // names its `name` column, which the table later renamed to `label`.
    let out = floe_json(
        dir.path(),
        "SELECT id, label FROM local.pyi.mapped ORDER BY id",
    );
    assert_eq!(
        out.trim(),
        r#"[{"id":1,"label":"old-a"},{"id":2,"label":"old-b"},{"id":3,"label":"new-c"}]"#
    );
    // `s.b` was renamed to `s.bee` after the first file: matched by the nested field id, in
    // projections and filters alike; lists, maps and uuids read as written.
    let out = floe_json(
        dir.path(),
        "SELECT id, s['a'] AS a, s['bee'] AS bee, l[1] AS l1, cardinality(l) AS n, m['k'] AS k, \
         encode(u, 'hex') AS u FROM local.pyi.nested WHERE s['bee'] <> 'q' ORDER BY id",
    );
    assert_eq!(
        out.trim(),
        concat!(
            r#"[{"id":1,"a":10,"bee":"x","l1":1,"n":3,"k":7,"u":"12345678123456781234567812345678"},"#,
            r#"{"id":2,"a":20,"bee":"y","n":0,"k":8},"#,
            r#"{"id":3,"a":30,"bee":"z","l1":4,"n":1}]"#
        )
    );
    // Files of both partition specs are read, and each spec prunes its own files: `cat = 'z'`
    // skips the two `identity(cat)` files of other values by partition and the unpartitioned
    // file by its column bounds.
    let out = floe_json(
        dir.path(),
        "SELECT cat, count(*) AS n, sum(id) AS s FROM local.pyi.evolving GROUP BY cat ORDER BY cat",
    );
    assert_eq!(
        out.trim(),
        r#"[{"cat":"x","n":4,"s":25},{"cat":"y","n":1,"s":2},{"cat":"z","n":1,"s":20}]"#
    );
    let plan = floe_json(
        dir.path(),
        "EXPLAIN ANALYZE SELECT sum(id) FROM local.pyi.evolving WHERE cat = 'z'",
    );
    assert!(plan.contains("files=1/3"), "{plan}");
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

/// Queries whose answers Floe and DuckDB must agree on, over the same table.
const DELETE_CHECKS: &[&str] = &[
    "SELECT count(*) AS n FROM lake.duck.orders",
    "SELECT sum(qty) AS total, min(id) AS low, max(id) AS high FROM lake.duck.orders",
    "SELECT region, count(*) AS n, sum(qty) AS total FROM lake.duck.orders GROUP BY region ORDER BY region",
    "SELECT count(*) AS n FROM lake.duck.orders WHERE qty < 0",
    "SELECT count(*) AS n FROM lake.duck.orders WHERE id BETWEEN 890 AND 960",
    "SELECT id, qty FROM lake.duck.orders WHERE id < 30 ORDER BY id",
];

/// Runs `client/tests/interop/{script}` against `weed`'s S3 and catalog.
fn interop_script(weed: &weed::Weed, script: &str, args: &[&str]) -> String {
    let mut all = vec![weed.s3.as_str(), weed.rest.as_str()];
    all.extend_from_slice(args);
    processes::run_interop_script_with_env(
        script,
        &all,
        &[
            ("AWS_ACCESS_KEY_ID", weed::ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", weed::SECRET_KEY),
        ],
    )
}

/// One `weed mini` for every check against a REST catalog and S3 (tests in one binary run in
/// parallel; one server keeps the port choice simple).
#[test]
fn lake_over_rest_catalog_and_s3() {
    let weed = weed::start_weed(&processes::test_python());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("floe.toml"), weed.floe_config()).unwrap();
    floe_reads_duckdb_deletes_and_updates(&weed, dir.path());
    floe_travels_to_every_pyiceberg_snapshot(&weed, dir.path());
    duckdb_reads_what_floe_writes(&weed, dir.path());
    signed_requests_pass_an_independent_verifier(&weed, dir.path());
    floe_reads_with_vended_credentials(&weed, dir.path());
    crate::concurrent_writes::concurrent_inserts_commit_on_the_rest_catalog(&weed);
}

/// A catalog that vends each table's S3 credentials: Floe has no keys of its own (none in its
/// config or environment), asks for them, reads with them, and never prints them.
fn floe_reads_with_vended_credentials(weed: &weed::Weed, dir: &std::path::Path) {
    let prefix = "/vending";
    let proxy = processes::start_interop_server(
        "catalog_proxy.py",
        &["vend-credentials", weed.rest.as_str(), prefix],
        &[
            ("AWS_ACCESS_KEY_ID", weed::ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", weed::SECRET_KEY),
            ("VENDED_ACCESS_KEY_ID", weed::ACCESS_KEY),
            ("VENDED_SECRET_ACCESS_KEY", weed::SECRET_KEY),
        ],
    );
    let keys = format!(
        r#", access_key_id = "{}", secret_access_key = "{}""#,
        weed::ACCESS_KEY,
        weed::SECRET_KEY
    );
    let config = weed.floe_config();
    let vending = config
        .replace(
            &format!("http://{}", weed.rest),
            &format!("http://{}{prefix}", proxy.address),
        )
        .replace(
            &format!(
                r#"credential = "{}:{}""#,
                weed::ACCESS_KEY,
                weed::SECRET_KEY
            ),
            "vended_credentials = true",
        )
        .replace(&keys, "");
    assert!(!vending.contains(weed::SECRET_KEY), "{vending}");
    std::fs::write(dir.join("vending.toml"), &vending).unwrap();
    let run = |sql: &str| {
        let output = floe_with_env(
            dir,
            &["--config", "vending.toml"],
            sql,
            &[("AWS_EC2_METADATA_DISABLED", "true")],
        );
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{sql}: {stderr}");
        String::from_utf8(output.stdout).unwrap() + &stderr
    };
    let sql = DELETE_CHECKS[1];
    assert_eq!(run(sql).trim(), floe_with_config(dir, sql).trim(), "{sql}");
    let plan = run(&format!("EXPLAIN ANALYZE {sql}"));
    assert!(!plan.contains(weed::SECRET_KEY), "{plan}");
}

/// The key pair Floe signs with (from the environment, the first link of the AWS chain) and
/// the verifier expects; not the S3 pair, so a mix-up shows.
const SIGNING_KEY: &str = "AKIAFLOESIGNINGTEST";
const SIGNING_SECRET: &str = "floe/signing+secret";

/// A catalog reached as AWS Glue's Iceberg endpoint is: every request SigV4-signed for `glue`,
/// the warehouse prefix (`account:s3tablescatalog/bucket`, escaped) in the path. botocore, in
/// front of the catalog, recomputes each signature and refuses what does not match.
fn signed_requests_pass_an_independent_verifier(weed: &weed::Weed, dir: &std::path::Path) {
    let prefix = "/iceberg/123456789012%3As3tablescatalog%2Fwarehouse";
    let verifier = processes::start_interop_server(
        "catalog_proxy.py",
        &[
            "verify-sigv4",
            weed.rest.as_str(),
            prefix,
            "glue",
            "us-west-2",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", weed::ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", weed::SECRET_KEY),
            ("SIGV4_ACCESS_KEY_ID", SIGNING_KEY),
            ("SIGV4_SECRET_ACCESS_KEY", SIGNING_SECRET),
        ],
    );
    let config = weed.floe_config();
    let signed = config
        .replace(
            &format!("http://{}", weed.rest),
            &format!("http://{}{prefix}", verifier.address),
        )
        .replace(
            &format!(
                r#"credential = "{}:{}""#,
                weed::ACCESS_KEY,
                weed::SECRET_KEY
            ),
            r#"signing = { name = "glue", region = "us-west-2" }"#,
        );
    assert!(signed.contains("signing"), "{signed}");
    std::fs::write(dir.join("signed.toml"), &signed).unwrap();
    let run = |secret: &str, sql: &str| {
        floe_with_env(
            dir,
            &["--config", "signed.toml"],
            sql,
            &[
                ("AWS_ACCESS_KEY_ID", SIGNING_KEY),
                ("AWS_SECRET_ACCESS_KEY", secret),
                ("AWS_CONFIG_FILE", "/nonexistent"),
                ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
            ],
        )
    };
    let output = run(
        SIGNING_SECRET,
        "CREATE SCHEMA signed; CREATE TABLE signed.t (id BIGINT); \
         INSERT INTO signed.t VALUES (1), (2), (40); \
         SELECT count(*) AS n, sum(id) AS s FROM signed.t",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(r#"[{"n":3,"s":43}]"#), "{stdout}");
    // A wrong secret signs wrongly: the verifier refuses, and the error says so.
    let output = run("not-the-secret", "SELECT count(*) FROM signed.t");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("SigV4 verification failed: signature mismatch"),
        "{stderr}"
    );
    // Unsigned (the same catalog without `signing`): refused too.
    std::fs::write(
        dir.join("signed.toml"),
        signed.replace(r#"signing = { name = "glue", region = "us-west-2" }"#, ""),
    )
    .unwrap();
    let output = run(SIGNING_SECRET, "SELECT count(*) FROM signed.t");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("no SigV4 Authorization header"), "{stderr}");
    floe_with_config(dir, "DROP TABLE signed.t; DROP SCHEMA signed");
}

fn duckdb_reads_what_floe_writes(weed: &weed::Weed, dir: &std::path::Path) {
    floe_with_config(
        dir,
        "CREATE SCHEMA floe; CREATE TABLE floe.made (id BIGINT, tag VARCHAR); \
         INSERT INTO floe.made VALUES (1, 'x'), (2, 'y'), (3, 'z')",
    );
    let read = interop_script(
        weed,
        "duckdb_lake.py",
        &[
            "query",
            "SELECT count(*) AS n, sum(id) AS s FROM lake.floe.made",
        ],
    );
    assert_eq!(read.trim(), r#"[{"n":3,"s":6}]"#);
    floe_with_config(dir, "DROP TABLE floe.made");
    let err = floe_error(dir, "SELECT * FROM floe.made");
    assert!(err.contains("not found") && err.contains("made"), "{err}");
}

fn floe_reads_duckdb_deletes_and_updates(weed: &weed::Weed, dir: &std::path::Path) {
    interop_script(weed, "duckdb_lake.py", &["write"]);
    let mut args = vec!["query"];
    args.extend_from_slice(DELETE_CHECKS);
    let expected = interop_script(weed, "duckdb_lake.py", &args);
    for (sql, expected) in DELETE_CHECKS.iter().zip(expected.lines()) {
        let got = floe_with_config(dir, sql);
        assert_eq!(got.trim(), expected, "{sql}");
    }
    // The rows come from position delete files applied in executors.
    let plan = floe_with_config(
        dir,
        "EXPLAIN ANALYZE SELECT count(*) FROM lake.duck.orders WHERE qty > 0",
    );
    assert!(plan.contains("delete_files_read="), "{plan}");
    assert!(plan.contains("rows_deleted="), "{plan}");
}

fn floe_travels_to_every_pyiceberg_snapshot(weed: &weed::Weed, dir: &std::path::Path) {
    let written: serde_json::Value =
        serde_json::from_str(&interop_script(weed, "pyiceberg_rest.py", &["write"])).unwrap();
    let snapshots = written["snapshots"].as_array().unwrap();
    assert_eq!(snapshots.len(), 4);
    for snapshot in snapshots {
        let id = snapshot["snapshot_id"].as_i64().unwrap();
        let expected = format!(
            r#"[{{"n":{},"total":{}}}]"#,
            snapshot["rows"], snapshot["total"]
        );
        for clause in [
            format!("FOR VERSION AS OF {id}"),
            format!("FOR SYSTEM_VERSION AS OF {id}"),
            format!("VERSION AS OF {id}"),
        ] {
            let sql =
                format!("SELECT count(*) AS n, sum(id) AS total FROM lake.pyi.events {clause}");
            assert_eq!(floe_with_config(dir, &sql).trim(), expected, "{sql}");
        }
        // The snapshot current at its own commit time is itself.
        let at = snapshot["committed_at_ms"].as_i64().unwrap();
        let iso = floe_with_config(
            dir,
            &format!("SELECT CAST(to_timestamp_millis({at}) AS VARCHAR) AS t"),
        );
        let iso: serde_json::Value = serde_json::from_str(iso.trim()).unwrap();
        let iso = iso[0]["t"].as_str().unwrap().to_string();
        for clause in [
            format!("FOR SYSTEM_TIME AS OF TIMESTAMP '{iso}'"),
            format!("TIMESTAMP AS OF '{iso}'"),
        ] {
            let sql =
                format!("SELECT count(*) AS n, sum(id) AS total FROM lake.pyi.events {clause}");
            assert_eq!(floe_with_config(dir, &sql).trim(), expected, "{sql}");
        }
        // Each snapshot is read with its own schema: `score` came with the third, and with row
        // 6, the newest (JSON output leaves nulls out).
        let columns = floe_with_config(
            dir,
            &format!(
                "SELECT * FROM lake.pyi.events FOR VERSION AS OF {id} ORDER BY id DESC LIMIT 1"
            ),
        );
        let has_score = snapshot["columns"].as_array().unwrap().len() == 3;
        assert_eq!(columns.contains("score"), has_score, "{columns}");
    }
    // A tag, and the errors.
    let tagged = &snapshots[1];
    let sql = "SELECT count(*) AS n FROM lake.pyi.events FOR VERSION AS OF 'first_two'";
    assert_eq!(
        floe_with_config(dir, sql).trim(),
        format!(r#"[{{"n":{}}}]"#, tagged["rows"])
    );
    let err = floe_error(dir, "SELECT * FROM lake.pyi.events FOR VERSION AS OF 42");
    assert!(err.contains("has no snapshot 42"), "{err}");
    let err = floe_error(
        dir,
        "SELECT * FROM lake.pyi.events FOR VERSION AS OF 'nope'",
    );
    assert!(err.contains("no branch or tag `nope`"), "{err}");
    let err = floe_error(
        dir,
        "SELECT * FROM lake.pyi.events FOR TIMESTAMP AS OF '2001-01-01'",
    );
    assert!(err.contains("no snapshot at or before 2001-01-01"), "{err}");

    // Metadata tables list what PyIceberg's `inspect` lists, by Trino's and Spark's names.
    // serde_json orders an object's keys by name: the columns are named in their order.
    let rows = |sql: &str| -> Vec<Vec<serde_json::Value>> {
        let out: serde_json::Value =
            serde_json::from_str(floe_with_config(dir, sql).trim()).unwrap();
        out.as_array()
            .unwrap()
            .iter()
            .map(|row| row.as_object().unwrap().values().cloned().collect())
            .collect()
    };
    let mut expected_snapshots = written["inspect_snapshots"].clone();
    for row in expected_snapshots.as_array_mut().unwrap() {
        // `floe --format json` leaves out nulls.
        row.as_array_mut().unwrap().retain(|v| !v.is_null());
    }
    let got = rows(
        r#"SELECT snapshot_id AS a, parent_id AS b, operation AS c FROM lake.pyi."events$snapshots" ORDER BY committed_at"#,
    );
    assert_eq!(serde_json::json!(got), expected_snapshots);
    let got = rows(
        "SELECT file_path AS a, record_count AS b, file_size_in_bytes AS c, content AS d \
         FROM lake.pyi.events.files ORDER BY file_path",
    );
    assert_eq!(serde_json::json!(got), written["inspect_files"]);
}
