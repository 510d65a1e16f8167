//! The `floe` binary as a user runs it: `-c`, `-f`, formats, exit codes, config errors and the
//! interactive loop, each in a fresh working directory (so `./floe-warehouse` is fresh).
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

fn floe(dir: &TempDir, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(args)
        .current_dir(dir.path())
        .env_remove("FLOE_CONFIG")
        .output()
        .unwrap()
}

/// The interactive shell with piped stdin/stdout/stderr, its history file in `dir`.
fn spawn_shell(dir: &TempDir) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_floe"))
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env_remove("FLOE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn readme_quick_start_runs_on_the_default_warehouse() {
    let dir = tempfile::tempdir().unwrap();
    let output = floe(
        &dir,
        &[
            "-c",
            "CREATE TABLE trips (id BIGINT, city VARCHAR, ts TIMESTAMP) PARTITIONED BY (city, day(ts));
             INSERT INTO trips VALUES (1, 'Oslo', TIMESTAMP '2024-05-01 08:00:00'), (2, 'Lima', TIMESTAMP '2024-05-02 09:00:00'), (3, 'Oslo', TIMESTAMP '2024-05-02 10:00:00');
             SELECT city, count(*) AS trips FROM trips GROUP BY city ORDER BY city;",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains("| Lima | 1     |"), "{out}");
    assert!(out.contains("| Oslo | 2     |"), "{out}");
    assert!(out.contains("2 rows in "), "{out}");
    assert!(out.contains("Created table local.default.trips"), "{out}");
    assert!(dir.path().join("floe-warehouse/catalog.db").exists());

    // A second process sees the committed table.
    let output = floe(
        &dir,
        &["-c", "SELECT count(*) AS n FROM local.default.trips"],
    );
    assert!(stdout(&output).contains("| 3 |"), "{}", stdout(&output));
}

#[test]
fn failing_statement_sets_exit_status_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let output = floe(
        &dir,
        &[
            "-c",
            "SELECT * FROM no_such_table; CREATE TABLE later (a INT)",
        ],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("local.default.no_such_table"),
        "{}",
        stderr(&output)
    );
    let output = floe(&dir, &["-c", "SHOW TABLES"]);
    assert!(!stdout(&output).contains("later"), "{}", stdout(&output));
}

#[test]
fn csv_and_json_formats() {
    let dir = tempfile::tempdir().unwrap();
    let sql = "SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y' ORDER BY a";
    let output = floe(&dir, &["--format", "csv", "-c", sql]);
    assert_eq!(stdout(&output), "a,b\n1,x\n2,y\n");
    assert!(stderr(&output).contains("2 rows in"), "{}", stderr(&output));
    let output = floe(&dir, &["--format", "json", "-c", sql]);
    assert_eq!(
        stdout(&output).trim(),
        r#"[{"a":1,"b":"x"},{"a":2,"b":"y"}]"#
    );
}

/// Struct, list and map columns of a table, and a metadata table (maps keyed by field id), in
/// every format: CSV reads back with Python's `csv` module, its nested cells as JSON text; JSON
/// with a JSON parser, nested values as objects and arrays.
#[test]
fn nested_values_print_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let create = "CREATE TABLE n AS SELECT 1 AS id, named_struct('a', 1, 'b', 'x') AS s, \
                  make_array(1, 2) AS l, map(['k'], [10]) AS m, map([7], ['seven']) AS im";
    let output = floe(&dir, &["-c", create]);
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = serde_json::json!([{
        "id": 1, "s": {"a": 1, "b": "x"}, "l": [1, 2], "m": {"k": 10}, "im": {"7": "seven"}
    }]);

    let output = floe(&dir, &["--format", "json", "-c", "SELECT * FROM n"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json, expected);

    // Python's csv module reads the CSV; each nested cell is JSON text.
    let csv_to_json = "import csv, json, sys\n\
        rows = list(csv.DictReader(sys.stdin))\n\
        nested = sys.argv[1].split(',')\n\
        cell = lambda k, v: (json.loads(v) if v else None) if k in nested else v\n\
        print(json.dumps([{k: cell(k, v) for k, v in r.items()} for r in rows]))";
    let read_csv = |sql: &str, nested: &str| -> serde_json::Value {
        let output = floe(&dir, &["--format", "csv", "-c", sql]);
        assert!(output.status.success(), "{}", stderr(&output));
        let mut python = Command::new(crate::processes::test_python())
            .args(["-c", csv_to_json, nested])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        python
            .stdin
            .take()
            .unwrap()
            .write_all(&output.stdout)
            .unwrap();
        let parsed = python.wait_with_output().unwrap();
        assert!(parsed.status.success(), "{}", stdout(&output));
        serde_json::from_slice(&parsed.stdout).unwrap()
    };
    let mut from_csv = read_csv("SELECT * FROM n", "s,l,m,im");
    from_csv[0]["id"] = serde_json::json!(1);
    assert_eq!(from_csv, expected);

    // Metadata tables: a list that is null for data files, and the snapshot summary map.
    let files = "SELECT record_count, equality_ids FROM \"n$files\"";
    let from_csv = read_csv(files, "equality_ids");
    assert_eq!(
        from_csv,
        serde_json::json!([{"record_count": "1", "equality_ids": null}])
    );
    let snapshots = "SELECT snapshot_id, summary FROM \"n$snapshots\"";
    let from_csv = read_csv(snapshots, "summary");
    assert_eq!(from_csv[0]["summary"]["added-records"], "1", "{from_csv}");
    let output = floe(&dir, &["--format", "json", "-c", snapshots]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json[0]["summary"]["added-records"], "1", "{json}");

    let output = floe(&dir, &["-c", "SELECT * FROM n"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("{a: 1, b: x}"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn script_file_runs() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("setup.sql");
    std::fs::write(
        &script,
        "-- a comment; with a semicolon\nCREATE SCHEMA s;\nCREATE TABLE s.t AS\n  SELECT 'a;b' AS v;\nSELECT v FROM s.t;\n",
    )
    .unwrap();
    let output = floe(&dir, &["-f", script.to_str().unwrap(), "--format", "csv"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "v\na;b\n");
}

#[test]
fn corrupt_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("floe.toml");
    std::fs::write(
        &config,
        "[catalogs.lake]\ntype = \"sql\"\nurl = \"sqlite://x.db\"\n",
    )
    .unwrap();
    let output = floe(
        &dir,
        &["--config", config.to_str().unwrap(), "-c", "SELECT 1"],
    );
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("floe.toml") && err.contains("url"), "{err}");

    // $FLOE_CONFIG is read when --config is absent.
    std::fs::write(&config, "[catalogs.lake]\ntype = \"oracle\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["-c", "SELECT 1"])
        .current_dir(dir.path())
        .env("FLOE_CONFIG", &config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("catalogs.lake.type"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn interactive_shell_reads_multi_line_statements_and_survives_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_shell(&dir);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"SELECT\n  40 + 2\n  AS answer;\nSELECT * FROM nope;\nSELECT 'still here' AS s;\n",
        )
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let out = stdout(&output);
    assert!(out.contains("| 42     |"), "{out}");
    assert!(out.contains("still here"), "{out}");
    assert!(stderr(&output).contains("nope"), "{}", stderr(&output));
}

#[test]
fn help_explains_the_options() {
    let dir = tempfile::tempdir().unwrap();
    let output = floe(&dir, &["--help"]);
    let out = stdout(&output);
    for needle in [
        "--config",
        "--command",
        "--file",
        "--format",
        "FLOE_CONFIG",
        "floe-warehouse",
        "Ctrl-C",
    ] {
        assert!(out.contains(needle), "--help lacks {needle}:\n{out}");
    }
}

/// Sends SIGINT to a process, as Ctrl-C in its terminal would.
fn interrupt(pid: u32) {
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn ctrl_c_cancels_the_running_statement_and_the_shell_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_shell(&dir);
    let mut stdin = child.stdin.take().unwrap();
    // Long enough to still be running when the interrupt arrives (hours at this size).
    stdin
        .write_all(b"SELECT count(*) FROM generate_series(1, 100000000000) t(v) WHERE v % 7 = 3;\n")
        .unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    interrupt(child.id());
    stdin.write_all(b"SELECT 'after cancel' AS s;\n").unwrap();
    drop(stdin);
    let started = std::time::Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(stderr(&output).contains("Cancelled"), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("after cancel"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn unreachable_host_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 on loopback: nothing listens there.
    let output = floe(&dir, &["--host", "127.0.0.1:1", "-c", "SELECT 1"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("cannot connect to Floe at 127.0.0.1:1"),
        "{err}"
    );
}

/// README's first command, as a new user runs it in a fresh directory: it is `cargo run` of this
/// `floe` binary (the build `.ci/feature_sets.py` holds to the test build's features), and its
/// statements give the answer the README promises.
#[test]
fn readme_first_command_answers() {
    let dir = tempfile::tempdir().unwrap();
    let readme = readme();
    let command = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|block| block.lines().find(|line| line.contains("cargo run")))
        .unwrap();
    let (cargo, sql) = command.split_once(" -- -c ").unwrap();
    assert!(
        cargo.contains("cargo run -p floe-client --bin floe"),
        "{cargo}"
    );
    let sql = sql
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap();
    let output = floe(&dir, &["-c", sql]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(
        out.contains("| Lima | 1     |") && out.contains("| Oslo | 1     |"),
        "{out}"
    );
}

/// README's first `floe.toml` example, with its absolute paths moved into a new, empty
/// directory: the SQLite catalog file and the warehouse do not exist yet and are made on first
/// use; a catalog file that cannot be made is named.
#[test]
fn readme_config_example_works_in_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let readme = readme();
    let example = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let root = dir.path().join("new");
    let root = root.to_str().unwrap();
    let config = dir.path().join("floe.toml");
    std::fs::write(
        &config,
        example
            .replace("/data/lake", &format!("{root}/data/lake"))
            .replace("/tmp/scratch", &format!("{root}/scratch")),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let output = floe(
        &dir,
        &[
            "--config",
            config,
            "-c",
            "CREATE TABLE t (id BIGINT); INSERT INTO t VALUES (1), (2); \
             SELECT count(*) AS n FROM lake.default.t",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("| 2 |"), "{}", stdout(&output));
    assert!(dir.path().join("new/data/lake/catalog.db").exists());

    // A catalog file under a path that cannot be a directory: the error names the path.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "not a directory").unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "[catalogs.lake]\ntype = \"sql\"\nuri = \"sqlite://{0}/catalog.db\"\nwarehouse = \"{0}\"\n",
            blocker.display()
        ),
    )
    .unwrap();
    let output = floe(&dir, &["--config", bad.to_str().unwrap(), "-c", "SELECT 1"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains(blocker.to_str().unwrap()), "{err}");
}
