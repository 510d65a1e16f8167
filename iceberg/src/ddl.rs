//! Translation between SQL DDL and Iceberg: column types, `PARTITIONED BY` transforms and
//! `SHOW CREATE TABLE`.
//!
//! Column types come from DataFusion's own SQL type mapping and are narrowed here to what the
//! Iceberg spec (format v2) can store, the way Spark's Iceberg integration does: small integers
//! widen to `int`, timestamps store microseconds (nanoseconds, v3, only when declared
//! `TIMESTAMP(9)`), any string type is `string`.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use iceberg::spec::{PartitionSpec, PrimitiveType, Schema as IcebergSchema, Transform, Type};

use datafusion::sql::planner::IdentNormalizer;
use datafusion::sql::sqlparser::ast::{
    ColumnDef, DataType as SqlDataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    Spanned, Value, ValueWithSpan,
};

use floe_common::error::{FloeError, Result};

/// The Iceberg schema for a `CREATE TABLE` whose columns DataFusion typed as `schema`.
/// Field ids are assigned in column order; the catalog may renumber them on create.
///
/// DataFusion types every timestamp as nanoseconds, a plain `TIMESTAMP` and a CTAS's timestamp
/// expressions included; as in Spark and Trino those are stored as microseconds. Only the
/// columns in `nanosecond_columns`, declared `TIMESTAMP(9)`, become `timestamp_ns` (v3).
pub fn iceberg_schema_for_create(
    schema: &Schema,
    nanosecond_columns: &[String],
) -> Result<IcebergSchema> {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(TimeUnit::Nanosecond, tz)
                if nanosecond_columns.contains(f.name()) =>
            {
                let tz = tz.as_ref().map(|_| Arc::<str>::from("+00:00"));
                Ok(f.as_ref()
                    .clone()
                    .with_data_type(DataType::Timestamp(TimeUnit::Nanosecond, tz)))
            }
            _ => storable_field(f),
        })
        .collect::<Result<_>>()?;
    let storable = Schema::new(fields);
    Ok(iceberg::arrow::arrow_schema_to_schema_auto_assign_ids(
        &storable,
    )?)
}

fn storable_field(field: &Field) -> Result<Field> {
    let data_type = storable_type(field.name(), field.data_type())?;
    Ok(Field::new(field.name(), data_type, field.is_nullable()))
}

fn storable_type(column: &str, data_type: &DataType) -> Result<DataType> {
    let utc = || Some(Arc::<str>::from("+00:00"));
    Ok(match data_type {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 | DataType::UInt16 => DataType::Int32,
        DataType::UInt32 => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::Date64 => DataType::Date32,
        DataType::Time32(_) | DataType::Time64(_) => DataType::Time64(TimeUnit::Microsecond),
        DataType::Timestamp(_, None) => DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Timestamp(_, Some(_)) => DataType::Timestamp(TimeUnit::Microsecond, utc()),
        DataType::Dictionary(_, value) => storable_type(column, value)?,
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => DataType::Decimal128(*p, *s),
        DataType::List(item) | DataType::LargeList(item) | DataType::ListView(item) => {
            DataType::List(Arc::new(storable_field(item)?))
        }
        DataType::Struct(fields) => DataType::Struct(Fields::from(
            fields
                .iter()
                .map(|f| storable_field(f))
                .collect::<Result<Vec<_>>>()?,
        )),
        DataType::Null => {
            return Err(FloeError::plan(format!(
                "column `{column}` has no type (a bare NULL); cast it, e.g. CAST(NULL AS INT)"
            )));
        }
        DataType::UInt64 | DataType::Interval(_) | DataType::Duration(_) => {
            return Err(FloeError::NotSupported(format!(
                "column `{column}` of type {data_type} cannot be stored in an Iceberg table"
            )));
        }
        other => other.clone(),
    })
}

/// The columns `columns` declares with nanosecond precision (`TIMESTAMP(9)`).
pub fn nanosecond_columns(columns: &[ColumnDef], normalizer: &IdentNormalizer) -> Vec<String> {
    columns
        .iter()
        .filter(|c| matches!(c.data_type, SqlDataType::Timestamp(Some(9), _)))
        .map(|c| normalizer.normalize(c.name.clone()))
        .collect()
}

/// The first column of `schema` whose type needs Iceberg format version 3, and that type.
pub fn first_v3_only_column(schema: &IcebergSchema) -> Option<(String, String)> {
    schema.as_struct().fields().iter().find_map(|field| {
        let v3_only = matches!(
            field.field_type.as_ref(),
            Type::Primitive(PrimitiveType::TimestampNs | PrimitiveType::TimestamptzNs)
        );
        v3_only.then(|| (field.name.clone(), sql_type_name(&field.field_type)))
    })
}

/// One `PARTITIONED BY` item: a transform applied to a source column.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionItem {
    /// The table column partitioned on.
    pub column: String,
    /// The Iceberg transform.
    pub transform: Transform,
}

/// Translates the `PARTITIONED BY` items: `col`, `identity(col)`, `year(col)`, `month(col)`,
/// `day(col)`, `hour(col)`, `bucket(N, col)`, `truncate(W, col)` (Spark's argument order;
/// `truncate(col, W)` is accepted too), `void(col)`. Column names are normalized by
/// `normalizer` as DataFusion normalizes the column definitions.
pub fn partition_items(items: &[Expr], normalizer: &IdentNormalizer) -> Result<Vec<PartitionItem>> {
    items
        .iter()
        .map(|item| partition_item(item, normalizer))
        .collect()
}

fn partition_item(item: &Expr, normalizer: &IdentNormalizer) -> Result<PartitionItem> {
    let bad = |why: &str| {
        FloeError::plan(format!(
            "invalid PARTITIONED BY item `{item}`: {why}{}",
            item.span().start
        ))
    };
    let column = |arg: &Expr| match arg {
        Expr::Identifier(ident) => Ok(normalizer.normalize(ident.clone())),
        _ => Err(bad(&format!("`{arg}` is not a column name"))),
    };
    let function = match item {
        Expr::Identifier(_) => {
            return Ok(PartitionItem {
                column: column(item)?,
                transform: Transform::Identity,
            });
        }
        Expr::Function(function) => function,
        _ => return Err(bad("expected a column or a transform such as day(ts)")),
    };
    let args = match &function.args {
        FunctionArguments::List(list)
            if list.duplicate_treatment.is_none()
                && list.clauses.is_empty()
                && function.filter.is_none()
                && function.over.is_none()
                && function.within_group.is_empty()
                && matches!(function.parameters, FunctionArguments::None) =>
        {
            list.args
                .iter()
                .map(|arg| match arg {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Ok(expr),
                    _ => Err(bad("transform arguments are a column and a number")),
                })
                .collect::<Result<Vec<_>>>()?
        }
        _ => {
            return Err(bad(
                "expected a transform such as day(ts) or bucket(16, id)",
            ));
        }
    };
    let number = |arg: &Expr| -> Option<u32> {
        match arg {
            Expr::Value(ValueWithSpan {
                value: Value::Number(n, _),
                ..
            }) => n.to_string().parse::<u32>().ok(),
            _ => None,
        }
    };
    let name = match function.name.0.as_slice() {
        [part] => part
            .as_ident()
            .map(|ident| ident.value.to_lowercase())
            .unwrap_or_default(),
        _ => String::new(),
    };
    let one_column = |transform: Transform| -> Result<PartitionItem> {
        match args.as_slice() {
            [arg] => Ok(PartitionItem {
                column: column(arg)?,
                transform,
            }),
            _ => Err(bad("expected one column argument")),
        }
    };
    match name.as_str() {
        "identity" => one_column(Transform::Identity),
        "year" | "years" => one_column(Transform::Year),
        "month" | "months" => one_column(Transform::Month),
        "day" | "days" | "date" => one_column(Transform::Day),
        "hour" | "hours" | "date_hour" => one_column(Transform::Hour),
        "void" => one_column(Transform::Void),
        "bucket" | "truncate" => {
            let [a, b] = args.as_slice() else {
                return Err(bad("expected two arguments, e.g. bucket(16, id)"));
            };
            // Spark writes bucket(N, col); Trino's and some docs' col-first order is accepted too.
            let (n, column_arg) = match number(a) {
                Some(n) => (n, *b),
                None => match number(b) {
                    Some(n) => (n, *a),
                    None => return Err(bad("expected a positive integer argument")),
                },
            };
            if n == 0 {
                return Err(bad("`0` is not a positive integer"));
            }
            let transform = if name == "bucket" {
                Transform::Bucket(n)
            } else {
                Transform::Truncate(n)
            };
            Ok(PartitionItem {
                column: column(column_arg)?,
                transform,
            })
        }
        _ => Err(bad(&format!(
            "unknown transform `{}` (expected identity, year, month, day, hour, bucket, truncate, void)",
            function.name
        ))),
    }
}

/// Spark's partition field name for a transform of `column`.
fn partition_field_name(column: &str, transform: &Transform) -> String {
    match transform {
        Transform::Identity => column.to_string(),
        Transform::Bucket(_) => format!("{column}_bucket"),
        Transform::Truncate(_) => format!("{column}_trunc"),
        Transform::Year => format!("{column}_year"),
        Transform::Month => format!("{column}_month"),
        Transform::Day => format!("{column}_day"),
        Transform::Hour => format!("{column}_hour"),
        _ => format!("{column}_null"),
    }
}

/// Binds `items` to `schema`, checking each column exists and suits its transform.
pub fn partition_spec(schema: &IcebergSchema, items: &[PartitionItem]) -> Result<PartitionSpec> {
    let mut builder = PartitionSpec::builder(schema.clone());
    for item in items {
        if schema.field_by_name(&item.column).is_none() {
            return Err(FloeError::plan(format!(
                "PARTITIONED BY names column `{}`, which the table does not have",
                item.column
            )));
        }
        builder = builder
            .add_partition_field(
                &item.column,
                partition_field_name(&item.column, &item.transform),
                item.transform,
            )
            .map_err(|e| {
                FloeError::plan(format!(
                    "cannot partition by {}({}): {}",
                    item.transform,
                    item.column,
                    e.message()
                ))
            })?;
    }
    Ok(builder.build()?)
}

/// The SQL spelling of an Iceberg type, as `SHOW CREATE TABLE` and `DESCRIBE` print it.
pub fn sql_type_name(data_type: &Type) -> String {
    match data_type {
        Type::Primitive(primitive) => match primitive {
            PrimitiveType::Boolean => "BOOLEAN".into(),
            PrimitiveType::Int => "INT".into(),
            PrimitiveType::Long => "BIGINT".into(),
            PrimitiveType::Float => "FLOAT".into(),
            PrimitiveType::Double => "DOUBLE".into(),
            PrimitiveType::Decimal { precision, scale } => format!("DECIMAL({precision}, {scale})"),
            PrimitiveType::Date => "DATE".into(),
            PrimitiveType::Time => "TIME".into(),
            PrimitiveType::Timestamp => "TIMESTAMP".into(),
            PrimitiveType::Timestamptz => "TIMESTAMP WITH TIME ZONE".into(),
            PrimitiveType::TimestampNs => "TIMESTAMP(9)".into(),
            PrimitiveType::TimestamptzNs => "TIMESTAMP(9) WITH TIME ZONE".into(),
            PrimitiveType::String => "STRING".into(),
            PrimitiveType::Uuid => "UUID".into(),
            PrimitiveType::Fixed(n) => format!("FIXED({n})"),
            PrimitiveType::Binary => "BINARY".into(),
        },
        Type::Struct(fields) => format!(
            "STRUCT<{}>",
            fields
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.name, sql_type_name(&f.field_type)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::List(list) => format!("ARRAY<{}>", sql_type_name(&list.element_field.field_type)),
        Type::Map(map) => format!(
            "MAP<{}, {}>",
            sql_type_name(&map.key_field.field_type),
            sql_type_name(&map.value_field.field_type)
        ),
    }
}

/// `text` as a SQL string literal, so `SHOW CREATE TABLE` output parses back as written.
fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `SHOW CREATE TABLE` text for a table.
pub fn show_create_table(name: &str, metadata: &iceberg::spec::TableMetadata) -> String {
    let schema = metadata.current_schema();
    let columns: Vec<String> = schema
        .as_struct()
        .fields()
        .iter()
        .map(|f| {
            let not_null = if f.required { " NOT NULL" } else { "" };
            format!("  {} {}{}", f.name, sql_type_name(&f.field_type), not_null)
        })
        .collect();
    let mut text = format!("CREATE TABLE {name} (\n{}\n)", columns.join(",\n"));
    let spec = metadata.default_partition_spec();
    if !spec.is_unpartitioned() {
        let items: Vec<String> = spec
            .fields()
            .iter()
            .map(|field| {
                let column = schema
                    .name_by_field_id(field.source_id)
                    .unwrap_or("?")
                    .to_string();
                match field.transform {
                    Transform::Identity => column,
                    Transform::Bucket(n) => format!("bucket({n}, {column})"),
                    Transform::Truncate(w) => format!("truncate({w}, {column})"),
                    other => format!("{other}({column})"),
                }
            })
            .collect();
        text.push_str(&format!("\nPARTITIONED BY ({})", items.join(", ")));
    }
    text.push_str(&format!("\nLOCATION {}", sql_string(metadata.location())));
    let mut properties: Vec<_> = metadata.properties().iter().collect();
    properties.sort();
    let mut listed = vec![format!(
        "  'format-version' = '{}'",
        metadata.format_version() as u8
    )];
    listed.extend(
        properties
            .iter()
            .map(|(k, v)| format!("  {} = {}", sql_string(k), sql_string(v))),
    );
    text.push_str(&format!("\nTBLPROPERTIES (\n{}\n)", listed.join(",\n")));
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn items(text: &str) -> Result<Vec<PartitionItem>> {
        use datafusion::sql::sqlparser::dialect::GenericDialect;
        use datafusion::sql::sqlparser::parser::Parser;
        let dialect = GenericDialect {};
        let exprs = Parser::new(&dialect)
            .try_with_sql(text)
            .unwrap()
            .parse_comma_separated(Parser::parse_expr)
            .unwrap();
        partition_items(&exprs, &IdentNormalizer::new(true))
    }

    #[test]
    fn parses_spark_style_transforms() {
        let parsed =
            items("Region, day(ts), BUCKET(16, id), truncate(4, \"Name\"), truncate(id, 2)")
                .unwrap();
        assert_eq!(
            parsed[0],
            PartitionItem {
                column: "region".into(),
                transform: Transform::Identity
            }
        );
        assert_eq!(
            parsed[1],
            PartitionItem {
                column: "ts".into(),
                transform: Transform::Day
            }
        );
        assert_eq!(parsed[2].transform, Transform::Bucket(16));
        assert_eq!(
            parsed[3],
            PartitionItem {
                column: "Name".into(),
                transform: Transform::Truncate(4)
            }
        );
        assert_eq!(parsed[4].transform, Transform::Truncate(2));
        for transform in ["year", "month", "hour", "void", "identity", "date"] {
            items(&format!("{transform}(ts)")).unwrap();
        }
        let err = items("bucket(0, id)").unwrap_err().to_string();
        assert!(err.contains("bucket(0, id)"), "{err}");
        let err = items("a, weekly(ts)").unwrap_err().to_string();
        assert!(
            err.contains("weekly") && err.contains("Line: 1, Column: 4"),
            "{err}"
        );
        let err = items("day(ts + 1)").unwrap_err().to_string();
        assert!(err.contains("not a column"), "{err}");
    }

    #[test]
    fn show_create_table_quotes_literals() {
        assert_eq!(sql_string("it's"), "'it''s'");
    }
}
