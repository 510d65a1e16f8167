//! Flight SQL's metadata commands on a cluster of processes, as a BI tool's navigator and
//! `DatabaseMetaData` use them: through the ADBC driver (a client nobody here wrote) and through
//! arrow-flight's client, in a session that also has a view of its own.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::UInt32Type;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables, ProstMessageExt, SqlInfo};
use arrow_flight::{FlightInfo, IpcMessage};
use prost::Message;
use futures::TryStreamExt;
use tonic::transport::Channel;

use crate::cluster::{client_with_defaults, fetch, run};
use crate::processes::{run_interop_script, start_cluster};

const SETUP: &[&str] = &[
    "CREATE SCHEMA shop",
    "CREATE TABLE shop.orders AS SELECT CAST(1 AS BIGINT) AS id, 'ada' AS customer, \
     [named_struct('sku', 'a', 'qty', 2)] AS lines",
    "CREATE TABLE shop.order_lines (order_id BIGINT, amount DECIMAL(10, 2))",
    "CREATE TABLE shop.ordersx (id BIGINT)",
    "CREATE TABLE inventory (sku VARCHAR)",
];

/// Every batch a `FlightInfo` points at.
async fn fetch_all(client: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.unwrap();
        let stream = client.do_get(ticket).await.unwrap();
        batches.extend(stream.try_collect::<Vec<_>>().await.unwrap());
    }
    batches
}

/// The `count` an INSERT's result carries.
fn inserted_rows(batches: &[RecordBatch]) -> u64 {
    batches
        .iter()
        .map(|b| {
            b.column(0)
                .as_primitive::<arrow::datatypes::UInt64Type>()
                .values()
                .iter()
                .sum::<u64>()
        })
        .sum()
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|batch| {
            let array = batch.column_by_name(column).unwrap().as_string::<i32>();
            (0..array.len()).map(|i| array.value(i).to_string()).collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bi_tools_browse_catalogs_namespaces_tables_and_columns() {
    let cluster = start_cluster();
    let address = cluster.scheduler.address.clone();
    let mut client = client_with_defaults(&address, "browser").await;
    for statement in SETUP {
        run(&mut client, statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    // The ADBC driver: server info, table types, the whole tree with columns, patterns, a
    // table's schema, and metadata tables when asked for by type.
    let output = run_interop_script("adbc_browse.py", &[&address, "local", "shop", "orders"]);
    let seen: serde_json::Value = serde_json::from_str(output.trim()).unwrap();
    assert!(seen.get("error").is_none(), "{seen:#}");
    assert_eq!(seen["vendor_name"], "Floe", "{seen:#}");
    assert_eq!(seen["vendor_version"], env!("CARGO_PKG_VERSION"), "{seen:#}");
    assert_eq!(
        seen["table_types"],
        serde_json::json!(["LOCAL TEMPORARY", "SYSTEM TABLE", "TABLE", "VIEW"])
    );
    assert_eq!(seen["catalogs"], serde_json::json!(["local"]));
    assert_eq!(
        seen["tables"],
        serde_json::json!([
            ["local", "default", "inventory", "TABLE"],
            ["local", "shop", "order_lines", "TABLE"],
            ["local", "shop", "orders", "TABLE"],
            ["local", "shop", "ordersx", "TABLE"],
        ]),
        "{seen:#}"
    );
    assert_eq!(
        seen["columns"],
        serde_json::json!([
            ["id", 1, "BIGINT"],
            ["customer", 2, "VARCHAR"],
            ["lines", 3, "ARRAY<STRUCT<sku: VARCHAR, qty: BIGINT>>"]
        ]),
        "{seen:#}"
    );
    assert_eq!(
        seen["like_prefix"],
        serde_json::json!([
            ["local", "shop", "order_lines", "TABLE"],
            ["local", "shop", "orders", "TABLE"],
            ["local", "shop", "ordersx", "TABLE"],
        ]),
        "{seen:#}"
    );
    assert_eq!(
        seen["like_escaped"],
        serde_json::json!([["local", "shop", "order_lines", "TABLE"]]),
        "{seen:#}"
    );
    let system: Vec<String> = seen["system_tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| format!("{}:{}", row[2].as_str().unwrap(), row[3].as_str().unwrap()))
        .collect();
    assert!(system.contains(&"orders$snapshots:SYSTEM TABLE".to_string()), "{system:?}");
    assert!(system.contains(&"orders$files:SYSTEM TABLE".to_string()), "{system:?}");
    assert_eq!(system.len(), 9, "{system:?}");
    let table_schema = seen["table_schema"].as_array().unwrap();
    let names: Vec<&str> = table_schema.iter().map(|f| f[0].as_str().unwrap()).collect();
    assert_eq!(names, ["id", "customer", "lines"], "{seen:#}");
    assert!(
        table_schema[2][1].as_str().unwrap().contains("sku"),
        "{seen:#}"
    );
    assert_eq!(seen["missing_table"], "NOT_FOUND", "{seen:#}");

    // arrow-flight's client, in a session with a view of its own: the view is listed with its
    // type, in that session only.
    run(&mut client, "CREATE VIEW shop.big_orders AS SELECT id FROM shop.orders WHERE id > 0")
        .await
        .unwrap();
    let tables = CommandGetTables {
        catalog: Some("local".into()),
        db_schema_filter_pattern: Some("sh%".into()),
        table_name_filter_pattern: None,
        table_types: vec!["VIEW".into()],
        include_schema: true,
    };
    let info = client.get_tables(tables.clone()).await.unwrap();
    let batches = fetch_all(&mut client, info).await;
    assert_eq!(strings(&batches, "table_name"), ["big_orders"]);
    assert_eq!(strings(&batches, "table_type"), ["VIEW"]);
    let schema_bytes = batches[0].column_by_name("table_schema").unwrap().as_binary::<i32>();
    let view_schema =
        arrow::datatypes::Schema::try_from(IpcMessage(schema_bytes.value(0).to_vec().into()))
            .unwrap();
    assert_eq!(view_schema.field(0).name(), "id");
    let mut other = client_with_defaults(&address, "another").await;
    let info = other.get_tables(tables).await.unwrap();
    assert!(strings(&fetch_all(&mut other, info).await, "table_name").is_empty());

    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: Some("%".into()),
        })
        .await
        .unwrap();
    let batches = fetch_all(&mut client, info).await;
    assert_eq!(strings(&batches, "db_schema_name"), ["default", "shop"]);

    // SqlInfo: what flightsql-dbapi's SQLAlchemy dialect and ODBC's SQLGetInfo read.
    let info = client
        .get_sql_info(vec![SqlInfo::FlightSqlServerName, SqlInfo::SqlIdentifierQuoteChar])
        .await
        .unwrap();
    let batches = fetch_all(&mut client, info).await;
    let ids: Vec<u32> = batches[0]
        .column(0)
        .as_primitive::<UInt32Type>()
        .values()
        .to_vec();
    assert_eq!(ids, [0, 504]);
    let values = batches[0].column(1).as_union();
    let by_id: BTreeMap<u32, String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, values.value(i).as_string::<i32>().value(0).to_string()))
        .collect();
    assert_eq!(by_id[&0], "Floe");
    assert_eq!(by_id[&504], "\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_last_per_connection_and_tickets_stay_in_theirs() {
    let cluster = start_cluster();
    let address = cluster.scheduler.address.clone();
    let mut owner = client_with_defaults(&address, "owner").await;
    for statement in ["CREATE SCHEMA shop", "CREATE TABLE shop.orders AS SELECT 1 AS id"] {
        run(&mut owner, statement).await.unwrap();
    }

    // ADBC connections with the cookie middleware BI tools turn on: each is one session.
    let output = run_interop_script("adbc_sessions.py", &[&address, "shop", "orders"]);
    let seen: serde_json::Value = serde_json::from_str(output.trim()).unwrap();
    assert_eq!(seen["use"], "ok 0", "{seen:#}");
    assert_eq!(seen["after_use"], "ok 1", "{seen:#}");
    assert_eq!(seen["other_connection"], "NOT_FOUND", "{seen:#}");
    assert_eq!(seen["after_set_option"], "ok 1", "{seen:#}");
    assert_eq!(seen["options"]["catalog"], "local", "{seen:#}");
    assert_eq!(seen["options"]["schema"], "shop", "{seen:#}");
    assert_eq!(seen["new_connection"], "NOT_FOUND", "{seen:#}");

    // A ticket is redeemable only in the session that made it.
    let info = owner
        .execute("SELECT * FROM shop.orders".to_string(), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut stranger = client_with_defaults(&address, "stranger").await;
    let refused = stranger.do_get(ticket.clone()).await.unwrap_err();
    assert!(
        refused.to_string().contains("another session"),
        "{refused}"
    );
    let code = match refused {
        arrow_flight::error::FlightError::Tonic(status) => Some(status.code()),
        _ => None,
    };
    assert_eq!(code, Some(tonic::Code::PermissionDenied));
    let batches: Vec<RecordBatch> = owner
        .do_get(ticket)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);

    // A statement runs on the fetch of its ticket, once: a FlightInfo asked for twice runs
    // once, one never fetched runs nothing, and a ticket cannot be fetched twice.
    let _unfetched = owner
        .execute("INSERT INTO shop.orders VALUES (2)".to_string(), None)
        .await
        .unwrap();
    let insert = owner
        .execute("INSERT INTO shop.orders VALUES (3)".to_string(), None)
        .await
        .unwrap();
    let _never = owner
        .execute("CREATE TABLE shop.never (a INT)".to_string(), None)
        .await
        .unwrap();
    let inserted = fetch_all(&mut owner, insert.clone()).await;
    assert_eq!(inserted_rows(&inserted), 1);
    let again = owner.do_get(insert.endpoint[0].ticket.clone().unwrap()).await;
    assert!(again.is_err());
    let ids = run(&mut owner, "SELECT id FROM shop.orders ORDER BY id").await.unwrap();
    let ids: Vec<i64> = ids
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec())
        .collect();
    assert_eq!(ids, [1, 3]);
    let err = run(&mut owner, "SELECT * FROM shop.never").await.unwrap_err();
    assert!(err.contains("never"), "{err}");

    // Closing a session (what ADBC and JDBC do when a connection closes) cancels its running
    // queries and forgets its tickets.
    let mut closing = client_with_defaults(&address, "closing").await;
    let slow = closing
        .execute(
            "SELECT count(*) FROM generate_series(1, 5000000000) WHERE value % 7 = 3".to_string(),
            None,
        )
        .await
        .unwrap();
    let waiting = closing
        .execute("SELECT 1".to_string(), None)
        .await
        .unwrap();
    let fetching = {
        let (mut client, slow) = (closing.clone(), slow.clone());
        tokio::spawn(async move { fetch(&mut client, &slow).await })
    };
    // Let the slow query start (its fetch runs it).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let close = arrow_flight::Action::new("CloseSession", Vec::<u8>::new());
    let closed: Vec<_> = closing.do_action(close).await.unwrap().try_collect().await.unwrap();
    assert_eq!(closed.len(), 1);
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(30), fetching)
        .await
        .expect("closing the session must stop its query")
        .unwrap();
    assert!(stopped.is_err(), "{stopped:?}");
    assert!(closing.do_get(waiting.endpoint[0].ticket.clone().unwrap()).await.is_err());

    // A ticket that is not one: InvalidArgument.
    let garbage = arrow_flight::Ticket::new(b"not a ticket".to_vec());
    let code = match owner.do_get(garbage).await.unwrap_err() {
        arrow_flight::error::FlightError::Tonic(status) => Some(status.code()),
        _ => None,
    };
    assert_eq!(code, Some(tonic::Code::InvalidArgument));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_bind_parameters_and_updates_count_rows() {
    let cluster = start_cluster();
    let address = cluster.scheduler.address.clone();
    let mut client = client_with_defaults(&address, "setup").await;
    for statement in [
        "CREATE SCHEMA shop",
        "CREATE TABLE shop.orders AS SELECT CAST(value AS BIGINT) AS id FROM generate_series(1, 4)",
    ] {
        run(&mut client, statement).await.unwrap();
    }
    let output = run_interop_script("adbc_prepared.py", &[&address]);
    let seen: serde_json::Value = serde_json::from_str(output.trim()).unwrap();
    assert_eq!(seen["parameter_schema"], serde_json::json!([["$1", "int64"]]), "{seen:#}");
    assert_eq!(seen["result_schema"], serde_json::json!([["id", "int64"]]), "{seen:#}");
    assert_eq!(seen["above_0"], serde_json::json!([1, 2, 3, 4]), "{seen:#}");
    assert_eq!(seen["above_2"], serde_json::json!([3, 4]), "{seen:#}");
    assert_eq!(seen["create"], serde_json::json!([]), "{seen:#}");
    assert_eq!(seen["insert_many_rowcount"], 3, "{seen:#}");
    assert_eq!(seen["update_count"], 2, "{seen:#}");
    assert_eq!(seen["lines"], 5, "{seen:#}");
    assert_eq!(seen["wrong_arity"], "INVALID_ARGUMENT", "{seen:#}");
    assert_eq!(
        seen["polars"],
        serde_json::json!({"shape": [2, 2], "ids": [1, 2]}),
        "{seen:#}"
    );

    // A second client nobody here wrote: flightsql-dbapi over pyarrow's Flight client.
    let output = run_interop_script("flightsql_dbapi_client.py", &[&address]);
    let seen: serde_json::Value = serde_json::from_str(output.trim()).unwrap();
    assert_eq!(seen["catalogs"], serde_json::json!(["local"]), "{seen:#}");
    assert_eq!(seen["schemas"], serde_json::json!(["default", "shop"]), "{seen:#}");
    assert_eq!(
        seen["tables"],
        serde_json::json!([["lines", "TABLE"], ["orders", "TABLE"]]),
        "{seen:#}"
    );
    assert_eq!(seen["sql_info"]["0"], "Floe", "{seen:#}");
    assert_eq!(seen["sql_info"]["3"], false, "{seen:#}");
    assert_eq!(seen["sql_info"]["504"], "\"", "{seen:#}");
    assert_eq!(seen["query"], serde_json::json!([{"n": 4}]), "{seen:#}");
    assert_eq!(seen["prepared"], serde_json::json!([3, 4]), "{seen:#}");
    assert_eq!(seen["update"], 2, "{seen:#}");
    assert_eq!(seen["after_update"], serde_json::json!([{"n": 6}]), "{seen:#}");

    // Flight's GetSchema: a statement's result schema without running it.
    let descriptor = arrow_flight::FlightDescriptor::new_cmd(
        arrow_flight::sql::CommandStatementQuery {
            query: "SELECT id, id * 2 AS twice FROM shop.orders".to_string(),
            transaction_id: None,
        }
        .as_any()
        .encode_to_vec(),
    );
    let result = client
        .inner_mut()
        .get_schema(descriptor)
        .await
        .unwrap()
        .into_inner();
    let schema = arrow::datatypes::Schema::try_from(&result).unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "twice"]);
    let bad = arrow_flight::FlightDescriptor::new_cmd(
        arrow_flight::sql::CommandStatementQuery {
            query: "SELECT * FROM shop.nowhere".to_string(),
            transaction_id: None,
        }
        .as_any()
        .encode_to_vec(),
    );
    let status = client.inner_mut().get_schema(bad).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status}");

    // A prepared statement's handle is refused in another session.
    let mut owner = client_with_defaults(&address, "owner").await;
    let mut prepared = owner
        .prepare("SELECT count(*) FROM shop.orders".to_string(), None)
        .await
        .unwrap();
    assert!(prepared.dataset_schema().unwrap().fields().len() == 1);
    let info = prepared.execute().await.unwrap();
    let batches = fetch_all(&mut owner, info).await;
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);
    // Another session can neither use nor close a handle it did not make.
    let handle = prepared_handle(&mut owner).await;
    let close = arrow_flight::sql::ActionClosePreparedStatementRequest {
        prepared_statement_handle: handle,
    };
    let action = arrow_flight::Action::new(
        "ClosePreparedStatement",
        arrow_flight::sql::ProstMessageExt::as_any(&close).encode_to_vec(),
    );
    let mut stranger = client_with_defaults(&address, "stranger").await;
    let code = match stranger.do_action(action.clone()).await {
        Err(arrow_flight::error::FlightError::Tonic(status)) => Some(status.code()),
        _ => None,
    };
    assert_eq!(code, Some(tonic::Code::PermissionDenied));
    let closed: Vec<_> = owner.do_action(action).await.unwrap().try_collect().await.unwrap();
    assert!(closed.is_empty());
    prepared.close().await.unwrap();
}

/// A fresh prepared statement's raw handle, made through the Flight SQL action directly.
async fn prepared_handle(client: &mut FlightSqlServiceClient<Channel>) -> prost::bytes::Bytes {
    let request = arrow_flight::sql::ActionCreatePreparedStatementRequest {
        query: "SELECT 1".to_string(),
        transaction_id: None,
    };
    let action = arrow_flight::Action::new(
        "CreatePreparedStatement",
        arrow_flight::sql::ProstMessageExt::as_any(&request).encode_to_vec(),
    );
    let results: Vec<arrow_flight::Result> = client
        .do_action(action)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let any = arrow_flight::sql::Any::decode(results[0].body.clone()).unwrap();
    any.unpack::<arrow_flight::sql::ActionCreatePreparedStatementResult>()
        .unwrap()
        .unwrap()
        .prepared_statement_handle
}
