//! A real cluster: one `floe-scheduler` and two `floe-executor` processes on loopback (ports
//! picked by the OS and read back from their first line of output), driven over Flight SQL.
//! Every query's result must equal the same query run by single-process DataFusion
//! (`FloeSession` without a cluster) over the same Iceberg tables.
#![allow(clippy::unwrap_used, missing_docs)]

use crate::processes;

use crate::processes::{start, start_cluster};
use crate::report_proxy::{ReportMode, ReportProxy};

use std::process::Command;
use std::time::{Duration, Instant};

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Schema};
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{ProstMessageExt, TicketStatementQuery};
use arrow_flight::{Action, CancelFlightInfoRequest, FlightInfo, Ticket};
use floe_core::{FloeConfig, FloeSession};
use futures::TryStreamExt;
use prost::Message;
use tonic::transport::Channel;

/// A Flight SQL client whose session sends every query through stages, however small its
/// tables: these tests are about distribution.
async fn client(address: &str) -> FlightSqlServiceClient<Channel> {
    let mut client = client_with_defaults(address, "cluster-test").await;
    run(&mut client, "SET floe.single_task_max_scan_bytes = 0")
        .await
        .unwrap();
    client
}

/// A Flight SQL client in session `session`, with the default settings.
pub(crate) async fn client_with_defaults(
    address: &str,
    session: &str,
) -> FlightSqlServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    client.set_header("x-floe-session", session);
    client
}

/// Runs `sql` over Flight SQL; returns the batches or the server's error message.
pub(crate) async fn run(
    client: &mut FlightSqlServiceClient<Channel>,
    sql: &str,
) -> Result<Vec<RecordBatch>, String> {
    let info = client
        .execute(sql.to_string(), None)
        .await
        .map_err(|e| e.to_string())?;
    fetch(client, &info).await
}

pub(crate) async fn fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    info: &FlightInfo,
) -> Result<Vec<RecordBatch>, String> {
    let mut batches = Vec::new();
    for endpoint in &info.endpoint {
        let stream = client
            .do_get(endpoint.ticket.clone().unwrap())
            .await
            .map_err(|e| e.to_string())?;
        batches.extend(
            stream
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(batches)
}

/// Rows as text, one string per row; floats rounded to 6 decimals, since a distributed sum
/// adds in another order.
pub(crate) fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Float64 | DataType::Float32 => {
                    let values = cast(c, &DataType::Float64).unwrap();
                    let values = values.as_primitive::<Float64Type>();
                    Arc::new(StringArray::from_iter(
                        values.iter().map(|v| v.map(|v| format!("{v:.6}"))),
                    )) as ArrayRef
                }
                _ => Arc::clone(c),
            })
            .collect();
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
                    .collect::<Vec<_>>(),
            )),
            columns,
        )
        .unwrap();
        for row in floe_core::text_rows::rows_as_text(&[batch]).unwrap() {
            out.push(row.join(" | "));
        }
    }
    out
}

const SETUP: &[&str] = &[
    "SET datafusion.execution.target_partitions = 4",
    "CREATE TABLE items (item_id BIGINT, name VARCHAR, category VARCHAR)",
    "INSERT INTO items SELECT value, 'item-' || value, CASE WHEN value % 10 = 0 THEN NULL ELSE 'cat-' || (value % 4) END FROM generate_series(0, 129)",
    "CREATE TABLE sales (id BIGINT, item_id BIGINT, store INT, amount DOUBLE) PARTITIONED BY (store)",
    "INSERT INTO sales SELECT value, value % 120, CAST(value % 3 AS INT), CAST(value % 1000 AS DOUBLE) / 10 FROM generate_series(1, 20000)",
    "INSERT INTO sales SELECT value, value % 97, CAST(value % 3 AS INT), CAST(value % 500 AS DOUBLE) FROM generate_series(20001, 40000)",
    "INSERT INTO sales SELECT value, NULL, 1, 1.5 FROM generate_series(40001, 40100)",
];

/// (query, whether its row order is defined)
const QUERIES: &[(&str, bool)] = &[
    // Aggregations (partial + final over a hash shuffle).
    (
        "SELECT store, count(*), sum(amount), min(id), max(id) FROM sales GROUP BY store",
        false,
    ),
    (
        "SELECT count(DISTINCT item_id), avg(amount) FROM sales",
        false,
    ),
    // Hash join of two large inputs, and a broadcast join of the small items table.
    (
        "SELECT a.store, count(*) FROM sales a JOIN sales b ON a.id = b.id + 1 GROUP BY a.store",
        false,
    ),
    (
        "SELECT i.category, count(*), sum(s.amount) FROM sales s JOIN items i ON s.item_id = i.item_id GROUP BY i.category",
        false,
    ),
    // Outer joins whose build side is small: items 120..129 have no sales, and must not come
    // out once per task.
    (
        "SELECT i.item_id, count(s.id) FROM items i LEFT JOIN sales s ON s.item_id = i.item_id GROUP BY i.item_id",
        false,
    ),
    (
        "SELECT count(*) FROM items i FULL JOIN sales s ON s.item_id = i.item_id",
        false,
    ),
    // Window functions.
    (
        "SELECT store, id, row_number() OVER (PARTITION BY store ORDER BY amount DESC, id) AS rn FROM sales QUALIFY rn <= 3",
        false,
    ),
    (
        "SELECT item_id, sum(amount) OVER (PARTITION BY item_id) AS total FROM sales WHERE id % 1000 = 0",
        false,
    ),
    // ORDER BY / LIMIT.
    (
        "SELECT id, amount FROM sales ORDER BY amount DESC, id LIMIT 10",
        true,
    ),
    (
        "SELECT item_id, count(*) AS n FROM sales GROUP BY item_id ORDER BY n DESC, item_id LIMIT 5",
        true,
    ),
    // UNION, INTERSECT, EXCEPT (NULL keys must match across partitions).
    (
        "SELECT item_id FROM sales WHERE store = 0 UNION SELECT item_id FROM items",
        false,
    ),
    (
        "SELECT item_id, store FROM sales WHERE id < 100 UNION ALL SELECT item_id, 9 FROM items",
        false,
    ),
    (
        "SELECT item_id FROM sales INTERSECT SELECT item_id FROM sales WHERE store = 1",
        false,
    ),
    (
        "SELECT item_id FROM sales EXCEPT SELECT item_id FROM items",
        false,
    ),
    // Subqueries: IN, NOT IN, EXISTS, scalar.
    (
        "SELECT count(*) FROM sales WHERE item_id IN (SELECT item_id FROM items WHERE category = 'cat-1')",
        false,
    ),
    (
        "SELECT count(*) FROM items WHERE item_id NOT IN (SELECT item_id FROM sales WHERE store = 2 AND item_id IS NOT NULL)",
        false,
    ),
    (
        "SELECT count(*) FROM items i WHERE EXISTS (SELECT 1 FROM sales s WHERE s.item_id = i.item_id AND s.amount > 99)",
        false,
    ),
    (
        "SELECT id FROM sales WHERE amount > (SELECT avg(amount) * 3 FROM sales) ORDER BY id LIMIT 20",
        true,
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_results_match_single_process_datafusion() {
    let cluster = start_cluster();
    let mut client = client(&cluster.scheduler.address).await;
    for statement in SETUP {
        run(&mut client, statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    // The same warehouse, read by a single-process DataFusion session.
    let config = FloeConfig::local_warehouse(&cluster.dir.path().join("floe-warehouse"));
    let local = FloeSession::new(&config).await.unwrap();
    local
        .execute_statement("SET datafusion.execution.target_partitions = 4")
        .await
        .unwrap();
    for (query, ordered) in QUERIES {
        let distributed = run(&mut client, query)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        let expected = local.execute_statement(query).await.unwrap().batches;
        let (mut got, mut want) = (rows(&distributed), rows(&expected));
        if !ordered {
            got.sort();
            want.sort();
        }
        assert!(!want.is_empty(), "{query} returned no rows");
        assert_eq!(got, want, "{query}");
    }

    // Tasks ran on both executors, and EXPLAIN shows the stage DAG.
    let analyzed = rows(
        &run(
            &mut client,
            "EXPLAIN ANALYZE SELECT store, count(*) FROM sales GROUP BY store",
        )
        .await
        .unwrap(),
    )
    .join("\n");
    assert!(analyzed.contains("executors=2"), "{analyzed}");
    assert!(analyzed.contains("bytes_shuffled="), "{analyzed}");
    let explained = rows(
        &run(
            &mut client,
            "EXPLAIN SELECT store, count(*) FROM sales GROUP BY store",
        )
        .await
        .unwrap(),
    )
    .join("\n");
    assert!(explained.contains("Stage 1"), "{explained}");
    assert!(explained.contains("ShuffleWriterExec"), "{explained}");
    assert!(explained.contains("ShuffleReaderExec"), "{explained}");

    // With the default settings these small tables are read by one task, which runs the
    // whole plan (its exchanges in the executor's memory) and gets the same rows.
    let mut defaults = client_with_defaults(&cluster.scheduler.address, "defaults").await;
    let query = "SELECT store, count(*) FROM sales GROUP BY store ORDER BY store";
    let explained = rows(
        &run(&mut defaults, &format!("EXPLAIN {query}"))
            .await
            .unwrap(),
    )
    .join("\n");
    assert!(explained.contains("Stage 0 (1 tasks)"), "{explained}");
    assert!(!explained.contains("Stage 1"), "{explained}");
    assert!(explained.contains("RepartitionExec"), "{explained}");
    assert_eq!(
        rows(&run(&mut defaults, query).await.unwrap()),
        rows(&run(&mut client, query).await.unwrap())
    );

    // The shell talks to the same cluster.
    let output = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args([
            "--host",
            &cluster.scheduler.address,
            "-c",
            "SELECT count(*) AS n FROM sales",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.contains("| 40100 |"), "{out}");

    // Shuffle files are gone once results have been read (removal is asynchronous): each
    // executor's own directory in its work dir holds only its marker and lock.
    let deadline = Instant::now() + Duration::from_secs(15);
    for i in 0..2 {
        let work = cluster.dir.path().join(format!("work-{i}"));
        loop {
            let leftovers = job_dirs(&work);
            if leftovers.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} still holds {leftovers:?}",
                work.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    drop(cluster.executors);
}

/// Runs `statements` through the ADBC Flight SQL driver; one line each: `ok N` or the ADBC
/// status code and message of its error.
fn adbc_statements(address: &str, statements: &[&str]) -> Vec<String> {
    let args: Vec<&str> = std::iter::once(address)
        .chain(statements.iter().copied())
        .collect();
    processes::run_interop_script("adbc_statements.py", &args)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Fetches `info`'s results in a task of its own (which is what runs the statement).
fn spawn_fetch(
    client: &FlightSqlServiceClient<Channel>,
    info: &FlightInfo,
) -> tokio::task::JoinHandle<Result<Vec<RecordBatch>, String>> {
    let (mut client, info) = (client.clone(), info.clone());
    tokio::spawn(async move { fetch(&mut client, &info).await })
}

/// The progress of the query `info` names; `None` once it is done and forgotten.
async fn progress_of(
    client: &mut FlightSqlServiceClient<Channel>,
    info: &FlightInfo,
) -> Option<floe_proto::QueryProgress> {
    let ticket = &info.endpoint[0].ticket.as_ref().unwrap().ticket;
    let any = arrow_flight::sql::Any::decode(ticket.clone()).unwrap();
    let handle = any
        .unpack::<TicketStatementQuery>()
        .unwrap()
        .unwrap()
        .statement_handle;
    let results: Vec<_> = match client
        .do_action(Action::new("floe.query_progress", handle))
        .await
    {
        Ok(stream) => stream.try_collect().await.unwrap(),
        Err(arrow_flight::error::FlightError::Tonic(status))
            if status.code() == tonic::Code::NotFound =>
        {
            return None;
        }
        Err(err) => panic!("{err}"),
    };
    Some(floe_proto::QueryProgress::decode(results[0].body.clone()).unwrap())
}

/// Waits until the query has been cut into stages on the cluster (its fetch started it), or
/// is already done (a count answered from statistics runs no task).
async fn wait_for_stages(client: &mut FlightSqlServiceClient<Channel>, info: &FlightInfo) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while progress_of(client, info)
        .await
        .is_some_and(|progress| progress.stages_total == 0)
    {
        assert!(Instant::now() < deadline, "the query never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the query's tasks are running on the executors (via `floe.query_progress`).
async fn wait_for_running_tasks(client: &mut FlightSqlServiceClient<Channel>, info: &FlightInfo) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let progress = progress_of(client, info)
            .await
            .expect("the query ended before its tasks ran");
        // Three running tasks with two slots per executor: both executors are busy.
        if progress.tasks_running >= 3 {
            // Let the tasks get well into their work.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return;
        }
        assert!(
            Instant::now() < deadline,
            "tasks never started: {progress:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_and_a_dead_executor_fail_cleanly() {
    let mut cluster = start_cluster();
    let mut client = client(&cluster.scheduler.address).await;
    for statement in &SETUP[..5] {
        run(&mut client, statement).await.unwrap();
    }

    // An unknown query id.
    let ticket = TicketStatementQuery {
        statement_handle: "no-such-query".as_bytes().to_vec().into(),
    };
    let err = client
        .do_get(Ticket::new(ticket.as_any().encode_to_vec()))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("unknown query `no-such-query`"), "{err}");

    // Bad SQL and a missing table name the problem.
    let err = run(&mut client, "SELEC 1").await.unwrap_err();
    assert!(err.contains("SELEC"), "{err}");
    let err = run(&mut client, "SELECT * FROM nowhere").await.unwrap_err();
    assert!(err.contains("nowhere"), "{err}");

    // An independent Flight SQL client (ADBC) can tell its mistakes from the cluster's by status.
    let statuses = adbc_statements(
        &cluster.scheduler.address,
        &[
            "SELEC 1",
            "SELECT * FROM nowhere",
            "SELECT * FROM local.nowhere.sales",
            "CREATE OR REPLACE TABLE sales (id INT)",
            "SELECT nope FROM sales",
            // Fails in a task on an executor: the task's report carries the code.
            "SELECT CAST(name AS INT) FROM items",
            "SELECT count(*) FROM sales",
        ],
    );
    let codes: Vec<&str> = statuses
        .iter()
        .map(|line| line.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "INVALID_ARGUMENT",
            "NOT_FOUND",
            "NOT_FOUND",
            "NOT_IMPLEMENTED",
            "NOT_FOUND",
            "INVALID_ARGUMENT",
            "ok"
        ],
        "{statuses:#?}"
    );
    assert!(statuses[0].contains("SELEC"), "{statuses:#?}");
    assert!(statuses[1].contains("nowhere"), "{statuses:#?}");

    // A query cancelled through Flight SQL stops; the scheduler serves the next one.
    // Long enough to be interrupted: over a billion joined rows through a filter.
    let slow = "SELECT count(*) FROM sales a JOIN sales b ON a.store = b.store \
                CROSS JOIN generate_series(1, 10) g \
                WHERE (a.amount * b.amount + g.value) % 7 > 3";
    // A query submitted while the slow one holds every slot waits, and runs once the cancelled
    // query's tasks have given their slots back (nothing else wakes the scheduler).
    // A statement runs when its ticket is fetched, so each fetch is started first.
    let info = client.execute(slow.to_string(), None).await.unwrap();
    let slow_fetch = spawn_fetch(&client, &info);
    wait_for_running_tasks(&mut client, &info).await;
    let waiting = client
        .execute("SELECT count(*) FROM sales".to_string(), None)
        .await
        .unwrap();
    let waiting_fetch = spawn_fetch(&client, &waiting);
    wait_for_stages(&mut client, &waiting).await;
    let cancel = CancelFlightInfoRequest {
        info: Some(info.clone()),
    };
    client
        .do_action(Action::new("CancelFlightInfo", cancel.encode_to_vec()))
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    assert!(slow_fetch.await.unwrap().is_err());
    let waited = tokio::time::timeout(Duration::from_secs(30), waiting_fetch)
        .await
        .expect("a query waiting for slots must run once a cancelled query frees them")
        .unwrap()
        .unwrap();
    assert_eq!(rows(&waited), vec!["20000"]);

    // An executor killed mid-query fails the query within seconds, naming the executor.
    let info = client.execute(slow.to_string(), None).await.unwrap();
    let slow_fetch = spawn_fetch(&client, &info);
    wait_for_running_tasks(&mut client, &info).await;
    let victim = cluster.executors.remove(0);
    drop(victim);
    let started = Instant::now();
    let err = slow_fetch.await.unwrap().unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.contains("executor"), "{err}");
    // The cluster's fault, not the query's: a client may retry.
    assert!(err.contains(&tonic::Code::Unavailable.to_string()), "{err}");

    // The scheduler keeps serving, on the executor that is left.
    let rows_after = rows(
        &run(
            &mut client,
            "SELECT store, count(*) FROM sales GROUP BY store ORDER BY store",
        )
        .await
        .unwrap(),
    );
    assert_eq!(rows_after, vec!["0 | 6666", "1 | 6667", "2 | 6667"]);
}

/// What the executors' own directories in `work` hold besides their marker and lock.
fn job_dirs(work: &std::path::Path) -> Vec<std::path::PathBuf> {
    use floe_executor::work_dir::{LOCK_FILE, MARKER_FILE};
    std::fs::read_dir(work)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .flat_map(|own| std::fs::read_dir(own).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|path| !path.ends_with(MARKER_FILE) && !path.ends_with(LOCK_FILE))
        .collect()
}

/// Runs `sql`, failing the test instead of waiting forever.
async fn run_within(
    client: &mut FlightSqlServiceClient<Channel>,
    sql: &str,
    limit: Duration,
) -> Result<Vec<RecordBatch>, String> {
    tokio::time::timeout(limit, run(client, sql))
        .await
        .unwrap_or_else(|_| panic!("no answer within {limit:?}: {sql}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_reports_are_retried_and_a_lost_one_fails_its_query() {
    // Executors reach the scheduler only through a proxy that can lose their reports.
    let dir = tempfile::tempdir().unwrap();
    let scheduler = start("floe-scheduler", &["--bind", "127.0.0.1:0"], dir.path());
    let proxy = ReportProxy::start(&scheduler.address).await;
    let _executors: Vec<_> = (0..2)
        .map(|i| {
            let work = dir.path().join(format!("work-{i}"));
            let work = work.to_str().unwrap();
            let args = ["--scheduler", &proxy.address, "--bind", "127.0.0.1:0"];
            let args = [&args[..], &["--slots", "2", "--work-dir", work]].concat();
            start("floe-executor", &args, dir.path())
        })
        .collect();
    let mut client = client(&scheduler.address).await;
    for statement in &SETUP[..5] {
        run(&mut client, statement).await.unwrap();
    }
    let query = "SELECT store, count(*) FROM sales GROUP BY store ORDER BY store";
    let expected = ["0 | 6666", "1 | 6667", "2 | 6667"];
    let limit = Duration::from_secs(60);

    // Every report fails four times before it gets through (executors used to give up after
    // three, leaving the query waiting forever).
    proxy.set_mode(ReportMode::FailFirst(4));
    let batches = run_within(&mut client, query, limit).await.unwrap();
    assert_eq!(rows(&batches), expected);
    let attempts = proxy.attempts();
    assert!(attempts >= 5, "{attempts} report attempts");

    // Every report arrives twice: the duplicates change nothing.
    proxy.set_mode(ReportMode::Duplicate);
    let batches = run_within(&mut client, query, limit).await.unwrap();
    assert_eq!(rows(&batches), expected);

    // Reports acknowledged but never delivered: the heartbeats no longer list the tasks, so
    // the query fails within seconds, naming a lost task, instead of waiting forever.
    proxy.set_mode(ReportMode::Swallow);
    let started = Instant::now();
    let err = run_within(&mut client, query, limit).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.contains("was lost"), "{err}");
    assert!(err.contains("of stage"), "{err}");
    assert!(err.contains("executor"), "{err}");
    // The cluster's fault, not the query's: a client may retry.
    assert!(err.contains(&tonic::Code::Unavailable.to_string()), "{err}");

    // The lost tasks' slots are free again.
    proxy.set_mode(ReportMode::Forward);
    let batches = run_within(&mut client, query, limit).await.unwrap();
    assert_eq!(rows(&batches), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_plan_over_the_message_limit_fails_only_its_query() {
    let cluster = start_cluster();
    let mut client = client(&cluster.scheduler.address).await;
    for statement in &SETUP[..5] {
        run(&mut client, statement).await.unwrap();
    }
    // Constant folding leaves a 70 MB literal in the scan stage's filter: its task's plan is
    // over the 64 MiB message limit. (It used to evict every executor in turn and hang.)
    let huge = "SELECT item_id FROM items WHERE name <> repeat('x', 70000000)";
    let err = run_within(&mut client, huge, Duration::from_secs(120))
        .await
        .unwrap_err();
    let limit = floe_shuffle::flight::MAX_GRPC_MESSAGE_BYTES.to_string();
    assert!(
        err.contains("of stage") && err.contains(&limit) && err.contains("message limit"),
        "{err}"
    );
    assert!(
        err.contains(&tonic::Code::ResourceExhausted.to_string()),
        "{err}"
    );

    // Both executors are still registered: the next query runs on both.
    let analyzed = run_within(
        &mut client,
        "EXPLAIN ANALYZE SELECT store, count(*) FROM sales GROUP BY store",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let analyzed = rows(&analyzed).join("\n");
    assert!(analyzed.contains("executors=2"), "{analyzed}");
}
