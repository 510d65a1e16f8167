//! SQL over Iceberg tables in a real on-disk warehouse (SQLite catalog, Parquet files).
#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use crate::common::{Warehouse, metric, scan_of};
use datafusion::common::ScalarValue;
use datafusion::common::stats::Precision;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_primitive_types_round_trip() {
    let wh = Warehouse::new().await;
    wh.run(
        "CREATE TABLE types (
            b BOOLEAN, i INT, l BIGINT, f FLOAT, d DOUBLE, dec DECIMAL(12, 3),
            dt DATE, tm TIME, ts TIMESTAMP, tstz TIMESTAMP WITH TIME ZONE,
            s VARCHAR, bin BYTEA, si SMALLINT NOT NULL
        )",
    )
    .await;
    wh.run(
        "INSERT INTO types VALUES
           (true, 1, 10000000000, 1.5, 2.25, 12345.678, DATE '2024-02-29', TIME '13:45:01.5',
            TIMESTAMP '2024-03-01 10:11:12.123456', TIMESTAMP '2024-03-01 10:11:12.5+02:00',
            'héllo', X'DEADBEEF', 7),
           (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, -1)",
    )
    .await;
    let text = wh.text("SELECT * FROM types ORDER BY si DESC").await;
    let expected = [
        "| b    | i | l           | f   | d    | dec       | dt         | tm           | ts                         | tstz                     | s     | bin      | si |",
        "| true | 1 | 10000000000 | 1.5 | 2.25 | 12345.678 | 2024-02-29 | 13:45:01.500 | 2024-03-01T10:11:12.123456 | 2024-03-01T08:11:12.500Z | héllo | deadbeef | 7  |",
        "|      |   |             |     |      |           |            |              |                            |                          |       |          | -1 |",
    ];
    for line in expected {
        assert!(text.contains(line), "missing row\n{line}\nin\n{text}");
    }
    // The Iceberg types are the ones the spec defines for these SQL types.
    let show = wh.text("SHOW CREATE TABLE types").await;
    for column in [
        "b BOOLEAN",
        "i INT",
        "l BIGINT",
        "f FLOAT",
        "d DOUBLE",
        "dec DECIMAL(12, 3)",
        "dt DATE",
        "tm TIME",
        "ts TIMESTAMP",
        "tstz TIMESTAMP WITH TIME ZONE",
        "s STRING",
        "bin BINARY",
        "si INT NOT NULL",
    ] {
        assert!(show.contains(column), "{column} not in\n{show}");
    }
    // Typed filters work on every type.
    let text = wh
        .text("SELECT count(*) AS n FROM types WHERE dec > 12345 AND dt = DATE '2024-02-29' AND ts < TIMESTAMP '2025-01-01' AND s LIKE 'h%'")
        .await;
    assert!(text.contains("| 1 |"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_table_prunes_files() {
    let wh = Warehouse::new().await;
    wh.run(
        "CREATE TABLE events (id BIGINT, region VARCHAR, ts TIMESTAMP, name VARCHAR)
         PARTITIONED BY (region, day(ts), bucket(4, id), truncate(2, name))",
    )
    .await;
    // 3 regions x 4 days x ids 0..40 -> many partition files.
    wh.run(
        "INSERT INTO events
         SELECT v AS id,
                CASE v % 3 WHEN 0 THEN 'eu' WHEN 1 THEN 'us' ELSE 'ap' END AS region,
                CAST('2024-01-0' || CAST(1 + v % 4 AS VARCHAR) || ' 01:00:00' AS TIMESTAMP) AS ts,
                'n' || CAST(v % 5 AS VARCHAR) AS name
         FROM generate_series(0, 119) AS t(v)",
    )
    .await;

    let (all, scans) = wh.run_with_scans("SELECT * FROM events").await;
    assert_eq!(all.iter().map(|b| b.num_rows()).sum::<usize>(), 120);
    let total_files = scan_of(&scans[0]).spec().files_planned();
    assert!(
        total_files >= 24,
        "expected many partition files, got {total_files}"
    );
    // Manifest column bounds reach DataFusion as inexact per-file statistics.
    let spec = scan_of(&scans[0]).spec();
    for file in spec.file_groups.iter().flatten() {
        let stats = file
            .statistics
            .as_ref()
            .expect("file statistics from the manifest");
        let id = &stats.column_statistics[0];
        let (
            Precision::Inexact(ScalarValue::Int64(Some(min))),
            Precision::Inexact(ScalarValue::Int64(Some(max))),
        ) = (&id.min_value, &id.max_value)
        else {
            panic!("no id bounds in {stats:?}");
        };
        assert!(0 <= *min && min <= max && *max <= 119, "{min}..{max}");
        assert_eq!(
            stats.num_rows,
            Precision::Inexact(file.record_count.unwrap() as usize)
        );
    }

    let (rows, scans) = wh
        .run_with_scans(
            "SELECT count(*) FROM events WHERE region = 'eu' AND ts >= TIMESTAMP '2024-01-02' AND ts < TIMESTAMP '2024-01-03'",
        )
        .await;
    let count = arrow::util::pretty::pretty_format_batches(&rows)
        .unwrap()
        .to_string();
    assert!(count.contains("| 10 "), "{count}");
    let scan = &scans[0];
    let planned = scan_of(scan).spec().files_planned();
    assert!(
        planned > 0 && planned < total_files / 4,
        "planned {planned} of {total_files}"
    );
    assert_eq!(metric(scan, "data_files_planned"), planned as usize);
    assert_eq!(
        metric(scan, "data_files_pruned"),
        (total_files - planned) as usize
    );
    assert!(metric(scan, "bytes_scanned") > 0);

    // bucket and truncate transforms prune too.
    let (_, scans) = wh.run_with_scans("SELECT * FROM events WHERE id = 7").await;
    assert!(scan_of(&scans[0]).spec().files_planned() < total_files / 2);
    let text = wh
        .text("SELECT id, region, name FROM events WHERE id = 7")
        .await;
    assert!(text.contains("| 7  | us     | n2   |"), "{text}");

    // EXPLAIN ANALYZE reports files planned vs pruned and bytes read per scan.
    let explain = wh
        .text("EXPLAIN ANALYZE SELECT count(*) FROM events WHERE region = 'us'")
        .await;
    assert!(explain.contains("IcebergScanExec"), "{explain}");
    assert!(explain.contains("data_files_planned="), "{explain}");
    assert!(explain.contains("data_files_pruned="), "{explain}");
    assert!(explain.contains("bytes_scanned="), "{explain}");

    let show = wh.text("SHOW CREATE TABLE events").await;
    assert!(
        show.contains("PARTITIONED BY (region, day(ts), bucket(4, id), truncate(2, name))"),
        "{show}"
    );

    // The partitions metadata table counts each partition's files and rows.
    let text = wh
        .text(
            r#"SELECT count(*) AS partitions, sum(file_count) AS files, sum(record_count) AS records,
                      count(DISTINCT partition['region']) AS regions
               FROM "events$partitions""#,
        )
        .await;
    let row = text.lines().nth(3).unwrap_or_default();
    let cells: Vec<&str> = row
        .split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let files = total_files.to_string();
    assert_eq!(
        cells,
        [files.as_str(), files.as_str(), "120", "3"],
        "{text}"
    );
    let text = wh
        .text(
            r#"SELECT partition['ts_day'] AS day, sum(record_count) AS n FROM "events$partitions"
               WHERE partition['region'] = 'eu' GROUP BY 1 ORDER BY 1"#,
        )
        .await;
    assert!(text.contains("| 2024-01-02 | 10 |"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctas_insert_select_and_drop() {
    let wh = Warehouse::new().await;
    wh.run("CREATE SCHEMA sales").await;
    wh.run("CREATE TABLE sales.src (k INT, v DOUBLE)").await;
    wh.run("INSERT INTO sales.src VALUES (1, 1.0), (2, 2.0), (2, 3.0)")
        .await;
    let out = wh
        .session
        .execute("CREATE TABLE sales.agg AS SELECT k, sum(v) AS total, count(*) AS n FROM sales.src GROUP BY k")
        .await
        .unwrap();
    assert_eq!(
        out[0].summary.as_deref(),
        Some("Created table local.sales.agg with 2 rows")
    );
    let text = wh.text("SELECT * FROM local.sales.agg ORDER BY k").await;
    assert!(text.contains("| 2 | 5.0   | 2 |"), "{text}");

    // INSERT ... SELECT appends a second snapshot; each write is one commit.
    wh.run("INSERT INTO sales.agg SELECT k + 10, v, 1 FROM sales.src")
        .await;
    let text = wh.text("SELECT count(*) AS n FROM sales.agg").await;
    assert!(text.contains("| 5 |"), "{text}");

    let tables = wh.text("SHOW TABLES IN sales").await;
    assert!(tables.contains("agg") && tables.contains("src"), "{tables}");
    wh.run("DROP TABLE sales.agg").await;
    let tables = wh.text("SHOW TABLES FROM local.sales").await;
    assert!(!tables.contains("agg"), "{tables}");
    let err = wh.error("SELECT * FROM sales.agg").await;
    assert!(err.contains("local.sales.agg"), "{err}");
    wh.run("DROP TABLE IF EXISTS sales.agg").await;

    let err = wh.error("DROP SCHEMA sales").await;
    assert!(err.contains("not empty"), "{err}");
    wh.run("DROP SCHEMA sales CASCADE").await;
    let schemas = wh.text("SHOW SCHEMAS").await;
    assert!(!schemas.contains("sales"), "{schemas}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_catalogs_join_in_one_query() {
    let wh = Warehouse::with_config(
        r#"
        default_catalog = "lake"
        [catalogs.lake]
        type = "sql"
        uri = "sqlite://{dir}/lake.db?mode=rwc"
        warehouse = "{dir}/lake"
        [catalogs.scratch]
        type = "memory"
        warehouse = "{dir}/scratch"
        "#,
    )
    .await;
    wh.run("CREATE TABLE customers (id INT, name VARCHAR)")
        .await;
    wh.run("INSERT INTO customers VALUES (1, 'ada'), (2, 'bob')")
        .await;
    wh.run("CREATE SCHEMA scratch.s").await;
    wh.run("CREATE TABLE scratch.s.orders (customer INT, amount DOUBLE)")
        .await;
    wh.run("INSERT INTO scratch.s.orders VALUES (1, 10.0), (1, 5.0), (2, 1.0)")
        .await;
    let text = wh
        .text(
            "SELECT c.name, sum(o.amount) AS total FROM lake.default.customers c
             JOIN scratch.s.orders o ON o.customer = c.id GROUP BY c.name ORDER BY c.name",
        )
        .await;
    assert!(text.contains("| ada  | 15.0  |"), "{text}");
    assert!(text.contains("| bob  | 1.0   |"), "{text}");
    let catalogs = wh.text("SHOW CATALOGS").await;
    assert!(
        catalogs.contains("lake") && catalogs.contains("scratch"),
        "{catalogs}"
    );

    wh.run("USE scratch.s").await;
    let text = wh.text("SELECT count(*) AS n FROM orders").await;
    assert!(text.contains("| 3 |"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_parquet_files_stay_queryable() {
    let wh = Warehouse::new().await;
    let path = wh.dir.path().join("plain.parquet");
    wh.run(&format!(
        "COPY (SELECT v AS x FROM generate_series(1, 5) t(v)) TO '{}' STORED AS PARQUET",
        path.display()
    ))
    .await;
    let text = wh
        .text(&format!("SELECT sum(x) AS s FROM '{}'", path.display()))
        .await;
    assert!(text.contains("| 15 |"), "{text}");
    wh.run(&format!(
        "CREATE EXTERNAL TABLE plain STORED AS PARQUET LOCATION '{}'",
        path.display()
    ))
    .await;
    let text = wh.text("SELECT max(x) AS m FROM plain").await;
    assert!(text.contains("| 5 |"), "{text}");
    // It can be joined with Iceberg tables and copied into one.
    wh.run("CREATE TABLE copied AS SELECT * FROM plain").await;
    let text = wh
        .text("SELECT count(*) AS n FROM copied JOIN plain USING (x)")
        .await;
    assert!(text.contains("| 5 |"), "{text}");
    wh.run("DROP TABLE plain").await;
}

/// Catalogs named after SQL keywords (`local` is the default catalog's name) work in every
/// statement kind with three-part names, `INSERT` and `EXPLAIN INSERT` included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyword_named_catalogs_take_three_part_names() {
    let wh = Warehouse::with_config(
        r#"
        default_catalog = "local"
        [catalogs.local]
        type = "sql"
        uri = "sqlite://{dir}/local.db?mode=rwc"
        warehouse = "{dir}/local"
        [catalogs.default]
        type = "memory"
        warehouse = "{dir}/default"
        [catalogs.user]
        type = "memory"
        warehouse = "{dir}/user"
        "#,
    )
    .await;
    // The issue's script, as one `floe -c` runs it.
    wh.run("CREATE SCHEMA local.s; CREATE TABLE local.s.t (id BIGINT); INSERT INTO local.s.t VALUES (1)")
        .await;
    wh.run("DROP TABLE local.s.t; DROP SCHEMA local.s").await;

    for catalog in ["local", "default", "user"] {
        let t = format!("{catalog}.s.t");
        wh.run(&format!("CREATE SCHEMA {catalog}.s")).await;
        wh.run(&format!(
            "CREATE TABLE {t} (id BIGINT, name VARCHAR) PARTITIONED BY (bucket(2, id))"
        ))
        .await;
        wh.run(&format!("INSERT INTO {t} VALUES (1, 'a'), (2, 'b')"))
            .await;
        wh.run(&format!(
            "INSERT INTO {t} SELECT {t}.id + 10, name FROM {t}"
        ))
        .await;
        let explain = wh
            .text(&format!("EXPLAIN INSERT INTO {t} VALUES (3, 'c')"))
            .await;
        assert!(explain.contains("DataSinkExec"), "{catalog}: {explain}");
        let explain = wh
            .text(&format!("EXPLAIN SELECT * FROM {t} WHERE id = 1"))
            .await;
        assert!(explain.contains("IcebergScanExec"), "{catalog}: {explain}");
        let text = wh
            .text(&format!("SELECT {t}.id FROM {t} ORDER BY {t}.id"))
            .await;
        assert!(text.contains("| 12 |"), "{catalog}: {text}");
        let out = wh
            .session
            .execute(&format!(
                "CREATE TABLE {catalog}.s.copy AS SELECT * FROM {t}"
            ))
            .await
            .unwrap();
        assert_eq!(
            out[0].summary.as_deref(),
            Some(format!("Created table {catalog}.s.copy with 4 rows").as_str())
        );
        let described = wh.text(&format!("DESCRIBE {t}")).await;
        assert!(described.contains("| name "), "{catalog}: {described}");
        let show = wh.text(&format!("SHOW CREATE TABLE {t}")).await;
        assert!(show.contains(&format!("CREATE TABLE {t} (")), "{show}");
        let tables = wh.text(&format!("SHOW TABLES IN {catalog}.s")).await;
        assert!(
            tables.contains("copy") && tables.contains("| t "),
            "{tables}"
        );
        let schemas = wh.text(&format!("SHOW SCHEMAS FROM {catalog}")).await;
        assert!(schemas.contains("| s "), "{catalog}: {schemas}");
        wh.run(&format!("USE {catalog}.s")).await;
        let text = wh.text("SELECT count(*) AS n FROM copy").await;
        assert!(text.contains("| 4 |"), "{catalog}: {text}");
        wh.run("USE local.default").await;
        wh.run(&format!("DROP TABLE {catalog}.s.copy")).await;
        wh.run(&format!("DROP TABLE IF EXISTS {t} PURGE")).await;
        wh.run(&format!("DROP SCHEMA {catalog}.s")).await;
        let schemas = wh.text(&format!("SHOW SCHEMAS IN {catalog}")).await;
        assert!(!schemas.contains("| s "), "{catalog}: {schemas}");
    }
}

/// A `TBLPROPERTIES` value is one literal: commas and quotes in it survive, and the
/// `SHOW CREATE TABLE` text creates the same table again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_properties_round_trip_through_show_create_table() {
    let wh = Warehouse::new().await;
    wh.run(
        "CREATE TABLE t (id INT, ts TIMESTAMP) PARTITIONED BY (day(ts))
         TBLPROPERTIES ('write.metadata.previous-versions-max' = '5',
                        'floe.test.list' = 'a,b', 'floe.test.quote' = 'it''s')",
    )
    .await;
    let show = wh.text("SHOW CREATE TABLE t").await;
    for property in [
        "'write.metadata.previous-versions-max' = '5'",
        "'floe.test.list' = 'a,b'",
        "'floe.test.quote' = 'it''s'",
    ] {
        assert!(show.contains(property), "{property} not in\n{show}");
    }
    let batches = wh.run("SHOW CREATE TABLE t").await;
    let original = floe_core::text_rows::rows_as_text(&batches).unwrap()[0][0].clone();
    // The same statement for another name, at the catalog's default location.
    let recreate: Vec<&str> = original
        .lines()
        .filter(|line| !line.starts_with("LOCATION "))
        .collect();
    let recreate = recreate
        .join("\n")
        .replace("local.default.t (", "local.default.t2 (");
    wh.run(&recreate).await;
    let batches = wh.run("SHOW CREATE TABLE t2").await;
    let copy = floe_core::text_rows::rows_as_text(&batches).unwrap()[0][0].clone();
    let without_location = |text: &str| {
        text.lines()
            .filter(|line| !line.starts_with("LOCATION "))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("local.default.t2 (", "local.default.t (")
    };
    assert_eq!(without_location(&copy), without_location(&original));
}

/// Inner joins are ordered by the sizes the manifests give, not as written: two large fact
/// tables joined on a shared key first would multiply (TPC-DS q72); joining the filtered
/// dimension first keeps every intermediate small. Results are the same either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inner_joins_are_ordered_by_table_statistics() {
    let wh = Warehouse::new().await;
    wh.run("CREATE TABLE sales (item INT, day INT, qty INT)")
        .await;
    wh.run("CREATE TABLE stock (item INT, day INT, on_hand INT)")
        .await;
    wh.run("CREATE TABLE days (day INT, year INT)").await;
    wh.run(
        "INSERT INTO sales SELECT CAST(v % 10 AS INT), CAST(v % 100 AS INT), CAST(v % 7 AS INT) \
         FROM generate_series(1, 2000) AS t(v)",
    )
    .await;
    wh.run(
        "INSERT INTO stock SELECT CAST(v % 10 AS INT), CAST(v % 100 AS INT), CAST(v % 5 AS INT) \
         FROM generate_series(1, 2000) AS t(v)",
    )
    .await;
    wh.run(
        "INSERT INTO days SELECT CAST(v AS INT), CAST(2000 + v / 10 AS INT) \
         FROM generate_series(0, 99) AS t(v)",
    )
    .await;
    let query = "SELECT count(*) AS n, sum(s.qty) AS q FROM sales s \
                 JOIN stock k ON s.item = k.item \
                 JOIN days d ON s.day = d.day \
                 WHERE d.year = 2003 AND k.on_hand < s.qty";
    let plan = wh.text(&format!("EXPLAIN {query}")).await;
    let logical = plan.split("physical_plan").next().unwrap();
    // The first join is the filtered dimension with a fact table; the fact-to-fact join is last.
    let innermost = logical
        .lines()
        .filter(|line| line.contains("Inner Join"))
        .next_back()
        .unwrap();
    assert!(innermost.contains("d.day"), "{logical}");
    // The non-equi condition is kept, at the join that sees both its columns.
    assert!(
        logical.lines().any(|line| line.contains("Inner Join")
            && line.contains("k.item")
            && line.contains("Filter: s.qty > k.on_hand")),
        "{logical}"
    );
    // The expected figures were computed outside Floe, by a nested loop over the same rows.
    let result = wh.text(query).await;
    assert!(result.contains("| 23600 | 99800 |"), "{result}");
}

/// A file larger than its share of the scan is read as byte ranges by several partitions, and
/// every row is read exactly once (a range takes the row groups that start inside it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_are_split_into_byte_ranges() {
    let wh = Warehouse::new().await;
    wh.run("CREATE TABLE big (id BIGINT, name VARCHAR)").await;
    wh.run("INSERT INTO big SELECT v, 'name ' || CAST(v AS VARCHAR) FROM generate_series(1, 5000) AS t(v)")
        .await;
    wh.run("SET datafusion.execution.target_partitions = 4")
        .await;
    wh.run("SET datafusion.optimizer.repartition_file_min_size = 1")
        .await;
    let (batches, scans) = wh.run_with_scans("SELECT id FROM big").await;
    let spec = scan_of(&scans[0]).spec();
    assert_eq!(spec.files_planned(), 1);
    assert_eq!(spec.file_groups.len(), 4, "{:?}", spec.file_groups);
    let mut ranges: Vec<_> = spec
        .file_groups
        .iter()
        .flatten()
        .map(|file| file.range.clone().expect("a byte range"))
        .collect();
    ranges.sort_by_key(|r| r.start);
    assert_eq!(ranges[0].start, 0);
    assert!(
        ranges.windows(2).all(|w| w[0].end == w[1].start),
        "{ranges:?}"
    );
    assert_eq!(
        ranges[3].end,
        spec.file_groups.iter().flatten().next().unwrap().size_bytes
    );
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 5000);
    let text = wh.text("SELECT count(*) AS n, sum(id) AS s FROM big").await;
    assert!(text.contains("| 5000 | 12502500 |"), "{text}");
    // Off, as in DataFusion, the file stays whole.
    wh.run("SET datafusion.optimizer.repartition_file_scans = false")
        .await;
    let (_, scans) = wh.run_with_scans("SELECT id FROM big").await;
    assert_eq!(scan_of(&scans[0]).spec().file_groups.len(), 1);
}

/// The ids of a local Parquet data file, in row order.
fn ids_in(location: &str) -> Vec<i64> {
    use arrow::array::AsArray;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let path = location.strip_prefix("file://").unwrap_or(location);
    let file = std::fs::File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .flat_map(|batch| {
            let batch = batch.unwrap();
            let ids = batch
                .column_by_name("id")
                .unwrap()
                .as_primitive::<arrow::datatypes::Int64Type>();
            ids.values().to_vec()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_vectors_and_equality_deletes_remove_their_rows() {
    use common::row_delta::{data_files, deletion_vector, equality_deletes, register_with_deletes};
    use floe_iceberg::catalogs::FloeCatalog;
    use iceberg::{NamespaceIdent, TableIdent};

    let wh = Warehouse::new().await;
    let config = floe_core::FloeConfig::local_warehouse(&wh.dir.path().join("warehouse"));
    let catalog = FloeCatalog::connect("local", &config.catalogs["local"])
        .await
        .unwrap();
    let ident = |name: &str| TableIdent::new(NamespaceIdent::new("default".into()), name.into());

    // v3: a deletion vector over one 5,000-row file, read whole and split into byte ranges.
    wh.run("CREATE TABLE v3t (id BIGINT, name VARCHAR) TBLPROPERTIES ('format-version' = '3')")
        .await;
    wh.run(
        "INSERT INTO v3t SELECT v, 'n' || CAST(v AS VARCHAR) FROM generate_series(0, 4999) AS t(v)",
    )
    .await;
    let files = data_files(&catalog, &ident("v3t")).await;
    assert_eq!(files.len(), 1, "{files:?}");
    let table = catalog.iceberg.load_table(&ident("v3t")).await.unwrap();
    let puffin = format!(
        "{}/data/{}-deletes.puffin",
        table.metadata().location(),
        uuid::Uuid::new_v4()
    );
    let deleted = [0u64, 1, 2500, 4999];
    let dv = deletion_vector(table.file_io(), &puffin, &files[0], &deleted).await;
    register_with_deletes(&catalog, &ident("v3t"), &ident("v3t_dv"), vec![dv]).await;
    let ids = ids_in(&files[0]);
    let kept: Vec<i64> = ids
        .iter()
        .enumerate()
        .filter(|(position, _)| !deleted.contains(&(*position as u64)))
        .map(|(_, id)| *id)
        .collect();
    let expected = format!("| {} | {} |", kept.len(), kept.iter().sum::<i64>());
    let (_, scans) = wh.run_with_scans("SELECT id FROM v3t_dv").await;
    assert_eq!(metric(&scans[0], "delete_files_read"), 1);
    assert_eq!(metric(&scans[0], "rows_deleted"), 4);
    let text = wh
        .text("SELECT count(*) AS n, sum(id) AS s FROM v3t_dv")
        .await;
    assert!(text.contains(&expected), "{text}");
    wh.run("SET datafusion.execution.target_partitions = 4")
        .await;
    wh.run("SET datafusion.optimizer.repartition_file_min_size = 1")
        .await;
    let text = wh
        .text("SELECT count(*) AS n, sum(id) AS s FROM v3t_dv")
        .await;
    assert!(text.contains(&expected), "split into ranges: {text}");
    wh.run("RESET datafusion.execution.target_partitions").await;
    wh.run("RESET datafusion.optimizer.repartition_file_min_size")
        .await;
    // The table the vector was added beside is untouched.
    let text = wh.text("SELECT count(*) AS n FROM v3t").await;
    assert!(text.contains("| 5000 |"), "{text}");

    // v2: an equality delete file, with a null key; data written after it is not deleted.
    wh.run("CREATE TABLE eqt (id BIGINT, name VARCHAR)").await;
    wh.run("INSERT INTO eqt VALUES (1, 'a'), (2, 'b'), (3, 'c'), (NULL, 'd'), (5, 'e')")
        .await;
    let table = catalog.iceberg.load_table(&ident("eqt")).await.unwrap();
    let id_field = table
        .metadata()
        .current_schema()
        .field_by_name("id")
        .unwrap()
        .id;
    let location = table
        .metadata()
        .location()
        .trim_start_matches("file://")
        .to_string();
    let path = std::path::Path::new(&location).join("data/eq-deletes.parquet");
    let deletes = equality_deletes(&path, id_field, "id", &[Some(2), None, Some(9)]);
    register_with_deletes(&catalog, &ident("eqt"), &ident("eqt_del"), vec![deletes]).await;
    let names = "SELECT count(*) AS n, string_agg(name, ',' ORDER BY name) AS names FROM eqt_del";
    let text = wh.text(names).await;
    assert!(text.contains("| 3 | a,c,e |"), "{text}");
    let text = wh.text("SELECT count(*) AS n FROM eqt_del").await;
    assert!(text.contains("| 3 |"), "count(*) reads no column: {text}");
    wh.run("INSERT INTO eqt_del VALUES (2, 'later')").await;
    let text = wh.text(names).await;
    assert!(text.contains("| 4 | a,c,e,later |"), "{text}");
}
