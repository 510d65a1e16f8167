//! Flight SQL's metadata commands: `GetCatalogs`, `GetDbSchemas`, `GetTables`, `GetTableTypes`,
//! `GetSqlInfo`, `GetXdbcTypeInfo` and the key commands.
//!
//! `GetFlightInfo` on a metadata command answers with the result schema and one ticket that is
//! the command itself, so it runs nothing; `DoGet` on that ticket lists, in the caller's session
//! (its views and external tables are listed with the catalog's tables). Listing goes through
//! `floe_core::session::browse`, whose failures name the catalog that did not answer. Iceberg has
//! no primary or foreign keys, so the key commands answer empty results with the spec's schemas.

use std::sync::{Arc, LazyLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::sql::metadata::GetTablesBuilder;
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables,
    ProstMessageExt,
};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status};

use floe_core::FloeSession;
use floe_core::session::browse::{NamePattern, TableFilter, TableKind};
use floe_proto::status::to_status;

use super::DoGetStream;

/// The `FlightInfo` of a metadata command: its schema and one ticket carrying the command.
pub(super) fn command_info(
    command: impl ProstMessageExt,
    schema: &Schema,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    let ticket = Ticket::new(command.as_any().encode_to_vec());
    FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("cannot encode result schema: {e}")))
        .map(|info| {
            info.with_endpoint(FlightEndpoint::new().with_ticket(ticket))
                .with_descriptor(descriptor)
        })
}

/// [`command_info`] as the answer to `request`.
pub(super) fn info_response(
    command: impl ProstMessageExt,
    schema: &Schema,
    request: Request<FlightDescriptor>,
) -> Result<Response<FlightInfo>, Status> {
    Ok(Response::new(command_info(command, schema, request.into_inner())?))
}

/// An empty result with `schema` as the answer to a `DoGet`.
pub(super) fn empty_response(schema: &SchemaRef) -> Result<Response<DoGetStream>, Status> {
    Ok(Response::new(empty_stream(Arc::clone(schema))?))
}

/// One batch as a `DoGet` stream.
pub(super) fn batch_stream(
    batch: Result<RecordBatch, arrow::error::ArrowError>,
) -> Result<DoGetStream, Status> {
    let batch = batch.map_err(|e| to_status(&e))?;
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(batch.schema())
        .build(futures::stream::once(async { Ok(batch) }))
        .map_err(|e| to_status(&e));
    Ok(stream.boxed())
}

/// An empty result with `schema` as a `DoGet` stream.
pub(super) fn empty_stream(schema: SchemaRef) -> Result<DoGetStream, Status> {
    batch_stream(Ok(RecordBatch::new_empty(schema)))
}

pub(super) fn catalogs(session: &FloeSession, command: CommandGetCatalogs) -> Result<DoGetStream, Status> {
    let mut builder = command.into_builder();
    for catalog in session.list_catalogs() {
        builder.append(catalog);
    }
    batch_stream(builder.build().map_err(arrow_error))
}

pub(super) async fn schemas(
    session: &FloeSession,
    command: CommandGetDbSchemas,
) -> Result<DoGetStream, Status> {
    let pattern = command.db_schema_filter_pattern.as_deref().map(NamePattern::new);
    let namespaces = session
        .list_namespaces(command.catalog.as_deref(), pattern.as_ref())
        .await
        .map_err(|e| to_status(&e))?;
    // The builder's own filters are left empty: the listing applied them, JDBC-style.
    let mut builder = CommandGetDbSchemas::default().into_builder();
    for (catalog, namespace) in namespaces {
        builder.append(catalog, namespace);
    }
    batch_stream(builder.build().map_err(arrow_error))
}

pub(super) async fn tables(
    session: &FloeSession,
    command: CommandGetTables,
) -> Result<DoGetStream, Status> {
    let filter = TableFilter {
        catalog: command.catalog.clone(),
        namespace: command.db_schema_filter_pattern.as_deref().map(NamePattern::new),
        table: command.table_name_filter_pattern.as_deref().map(NamePattern::new),
        types: command.table_types.clone(),
        with_schema: command.include_schema,
    };
    let tables = session.list_tables(&filter).await.map_err(|e| to_status(&e))?;
    let mut builder = GetTablesBuilder::new(
        None::<String>,
        None::<String>,
        None::<String>,
        Vec::<String>::new(),
        command.include_schema,
    );
    let no_schema = Schema::empty();
    for table in tables {
        let schema = match &table.schema {
            Some(schema) => described(schema, &table.catalog, &table.namespace, &table.name),
            None => no_schema.clone(),
        };
        builder
            .append(
                &table.catalog,
                &table.namespace,
                &table.name,
                table.kind.as_str(),
                &schema,
            )
            .map_err(|e| to_status(&e))?;
    }
    batch_stream(builder.build().map_err(arrow_error))
}

/// The SQL name of a column type, as DDL spells it (what ODBC's `SQLColumns` and ADBC's
/// `xdbc_type_name` show).
fn sql_type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            format!("{data_type}").to_uppercase()
        }
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "VARBINARY".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP WITH TIME ZONE".into(),
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            format!("ARRAY<{}>", sql_type_name(item.data_type()))
        }
        DataType::Struct(fields) => format!(
            "STRUCT<{}>",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), sql_type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "MAP<{}, {}>",
                sql_type_name(kv[0].data_type()),
                sql_type_name(kv[1].data_type())
            ),
            other => format!("MAP<{other}>"),
        },
        other => other.to_string().to_uppercase(),
    }
}

/// `schema` with the column metadata Flight SQL defines for `GetTables` (`ARROW:FLIGHT:SQL:*`:
/// type name, where the column lives, precision and scale, what may be done with it).
fn described(schema: &Schema, catalog: &str, namespace: &str, table: &str) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| {
            let mut metadata = field.metadata().clone();
            let mut put = |key: &str, value: String| {
                metadata.insert(format!("ARROW:FLIGHT:SQL:{key}"), value);
            };
            put("TYPE_NAME", sql_type_name(field.data_type()));
            put("CATALOG_NAME", catalog.to_string());
            put("DB_SCHEMA_NAME", namespace.to_string());
            put("TABLE_NAME", table.to_string());
            if let DataType::Decimal128(p, s) | DataType::Decimal256(p, s) = field.data_type() {
                put("PRECISION", p.to_string());
                put("SCALE", s.to_string());
            }
            let text = matches!(
                field.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            );
            put("IS_CASE_SENSITIVE", if text { "1" } else { "0" }.to_string());
            put("IS_AUTO_INCREMENT", "0".to_string());
            put("IS_READ_ONLY", "0".to_string());
            put("IS_SEARCHABLE", "1".to_string());
            field.as_ref().clone().with_metadata(metadata)
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

pub(super) fn table_types(command: CommandGetTableTypes) -> Result<DoGetStream, Status> {
    let mut builder = command.into_builder();
    for kind in TableKind::ALL {
        builder.append(kind.as_str());
    }
    batch_stream(builder.build().map_err(arrow_error))
}

fn arrow_error(err: arrow_flight::error::FlightError) -> arrow::error::ArrowError {
    arrow::error::ArrowError::ExternalError(Box::new(err))
}

/// `GetPrimaryKeys`' result schema (FlightSql.proto).
pub(super) static PRIMARY_KEYS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
});

/// The result schema of `GetExportedKeys`, `GetImportedKeys` and `GetCrossReference`.
pub(super) static FOREIGN_KEYS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
});
