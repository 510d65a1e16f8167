//! Maps a data file's columns to the table's columns by Iceberg field id, not by name.
//!
//! DataFusion's Parquet reader matches file columns to table columns by name. Iceberg tables
//! evolve (columns are renamed, dropped and re-added under an old name), so names in an old file
//! can be wrong in both directions. Every Parquet file Iceberg writers produce carries each
//! column's field id in the `PARQUET:field_id` metadata; this adapter resolves columns through
//! it, nested fields included, then lets DataFusion's default adapter insert the casts and
//! null-fills. Files without field ids (added by `add_files` or a migration) are matched through
//! the table's name mapping (`schema.name-mapping.default`) when it has one, by name otherwise.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Result, not_impl_err};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr_adapter::{
    DefaultPhysicalExprAdapterFactory, PhysicalExprAdapter, PhysicalExprAdapterFactory,
};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;

use super::relabel::RelabelExpr;

/// Field metadata holding the names a field had in files written without field ids, from the
/// table's `schema.name-mapping.default` (a JSON array of names).
pub const MAPPED_NAMES_META_KEY: &str = "floe:mapped_names";
/// The table property holding the name mapping.
const NAME_MAPPING_PROPERTY: &str = "schema.name-mapping.default";

/// Creates [`FieldIdExprAdapter`]s for the files of one Iceberg scan.
///
/// The table's field ids are taken once from the table's Arrow schema rather than from the
/// schema the scan outputs: plans carry no field-id metadata (it would leak into every schema
/// above the scan, and DataFusion rejects a UNION whose inputs' field metadata differ).
#[derive(Debug, Default, Clone)]
pub struct FieldIdAdapterFactory {
    table_schema: Option<SchemaRef>,
}

impl FieldIdAdapterFactory {
    /// An adapter factory for a table whose Arrow schema `table_schema` carries field ids (and,
    /// from [`with_name_mapping`], mapped names), nested fields included.
    pub fn for_table(table_schema: &Schema) -> Self {
        Self {
            table_schema: Some(Arc::new(table_schema.clone())),
        }
    }
}

/// `schema` without the `PARQUET:field_id` and mapped-names metadata, nested fields included.
pub fn without_field_ids(schema: &Schema) -> SchemaRef {
    let fields: Vec<FieldRef> = schema.fields().iter().map(strip_field).collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn strip_field(field: &FieldRef) -> FieldRef {
    let mut metadata = field.metadata().clone();
    metadata.remove(PARQUET_FIELD_ID_META_KEY);
    metadata.remove(MAPPED_NAMES_META_KEY);
    let data_type = map_children(field.data_type(), strip_field);
    Arc::new(
        field
            .as_ref()
            .clone()
            .with_metadata(metadata)
            .with_data_type(data_type),
    )
}

/// `data_type` with `f` applied to each direct child field (struct fields, list elements, map
/// entries); other types unchanged.
fn map_children(data_type: &DataType, f: impl Fn(&FieldRef) -> FieldRef) -> DataType {
    match data_type {
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(f).collect()),
        DataType::List(element) => DataType::List(f(element)),
        DataType::LargeList(element) => DataType::LargeList(f(element)),
        DataType::FixedSizeList(element, size) => DataType::FixedSizeList(f(element), *size),
        DataType::Map(entries, sorted) => DataType::Map(f(entries), *sorted),
        other => other.clone(),
    }
}

/// `schema` with each field the table's name mapping lists carrying its mapped names, so a scan
/// can resolve the columns of files written without field ids (`add_files`, migrations).
pub fn with_name_mapping(schema: SchemaRef, properties: &HashMap<String, String>) -> SchemaRef {
    let Some(mapping) = properties.get(NAME_MAPPING_PROPERTY) else {
        return schema;
    };
    let mut names_by_id = HashMap::new();
    match serde_json::from_str::<Vec<MappedField>>(mapping) {
        Ok(fields) => flatten_mapping(&fields, &mut names_by_id),
        // A broken mapping only means files without ids match by name, as with none.
        Err(e) => log::warn!("ignoring an unreadable `{NAME_MAPPING_PROPERTY}`: {e}"),
    }
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|f| attach_names(f, &names_by_id))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// One entry of a name mapping (Iceberg spec, "Column Projection").
#[derive(serde::Deserialize)]
struct MappedField {
    #[serde(rename = "field-id")]
    field_id: Option<i32>,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    fields: Vec<MappedField>,
}

fn flatten_mapping(fields: &[MappedField], out: &mut HashMap<i32, String>) {
    for field in fields {
        if let Some(id) = field.field_id {
            out.insert(id, serde_json::json!(field.names).to_string());
        }
        flatten_mapping(&field.fields, out);
    }
}

fn attach_names(field: &FieldRef, names_by_id: &HashMap<i32, String>) -> FieldRef {
    let data_type = map_children(field.data_type(), |child| attach_names(child, names_by_id));
    let mut field = field.as_ref().clone().with_data_type(data_type);
    if let Some(names) = field_id(&field).and_then(|id| names_by_id.get(&id)) {
        let mut metadata = field.metadata().clone();
        metadata.insert(MAPPED_NAMES_META_KEY.to_string(), names.clone());
        field = field.with_metadata(metadata);
    }
    Arc::new(field)
}

impl PhysicalExprAdapterFactory for FieldIdAdapterFactory {
    fn create(
        &self,
        logical_file_schema: SchemaRef,
        physical_file_schema: SchemaRef,
    ) -> Result<Arc<dyn PhysicalExprAdapter>> {
        let renamed = match &self.table_schema {
            Some(table) => rename_to_table(table, &physical_file_schema)?,
            None => Arc::clone(&physical_file_schema),
        };
        let inner =
            DefaultPhysicalExprAdapterFactory.create(logical_file_schema, Arc::clone(&renamed))?;
        Ok(Arc::new(FieldIdExprAdapter {
            inner,
            physical_file_schema,
            renamed,
        }))
    }
}

/// Rewrites table-level expressions to a file whose columns are matched by field id.
#[derive(Debug)]
pub struct FieldIdExprAdapter {
    inner: Arc<dyn PhysicalExprAdapter>,
    physical_file_schema: SchemaRef,
    /// The file schema with the table's names, nested ones included (see [`rename_to_table`]).
    renamed: SchemaRef,
}

impl PhysicalExprAdapter for FieldIdExprAdapter {
    fn rewrite(&self, expr: Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
        let adapted = self.inner.rewrite(expr)?;
        // The default adapter resolved columns against the renamed view of the file schema; the
        // reader later resolves them by name against the real file schema, so restore the
        // file's own names (the indices are the same in both views), and relabel nested fields
        // the table renamed so the arrays read have the view's types.
        adapted
            .transform(|node| {
                let Some(column) = node.as_any().downcast_ref::<Column>() else {
                    return Ok(Transformed::no(node));
                };
                let index = column.index();
                let (Some(real), Some(view)) = (
                    self.physical_file_schema.fields().get(index),
                    self.renamed.fields().get(index),
                ) else {
                    return Ok(Transformed::no(node));
                };
                if real.name() == column.name() && real.data_type() == view.data_type() {
                    return Ok(Transformed::no(node));
                }
                let mut restored: Arc<dyn PhysicalExpr> = Arc::new(Column::new(real.name(), index));
                if real.data_type() != view.data_type() {
                    restored = Arc::new(RelabelExpr::new(restored, view.data_type().clone()));
                }
                Ok(Transformed::yes(restored))
            })
            .data()
    }
}

pub(crate) fn field_id(field: &Field) -> Option<i32> {
    field
        .metadata()
        .get(PARQUET_FIELD_ID_META_KEY)?
        .parse()
        .ok()
}

/// The names a name mapping gives `field`.
fn mapped_names(field: &Field) -> Vec<String> {
    field
        .metadata()
        .get(MAPPED_NAMES_META_KEY)
        .and_then(|names| serde_json::from_str(names).ok())
        .unwrap_or_default()
}

/// How a file's fields are matched to the table's.
#[derive(Clone, Copy)]
enum MatchBy {
    /// The file has field ids (every spec-following writer).
    FieldId,
    /// No ids: the table's name mapping names each field.
    MappedName,
}

/// A view of the file schema in which each field, nested ones included, carries the table's
/// name for it. Fields the table no longer has get a name no table field can match. Files with
/// neither field ids nor a name mapping to resolve them keep their names.
fn rename_to_table(table: &SchemaRef, physical: &SchemaRef) -> Result<SchemaRef> {
    let match_by = if physical.fields().iter().any(|f| field_id(f).is_some()) {
        MatchBy::FieldId
    } else if table.fields().iter().any(|f| !mapped_names(f).is_empty()) {
        MatchBy::MappedName
    } else {
        return Ok(Arc::clone(physical));
    };
    let fields = rename_fields(physical.fields(), table.fields(), match_by)?;
    Ok(Arc::new(Schema::new_with_metadata(
        fields,
        physical.metadata().clone(),
    )))
}

fn rename_fields(physical: &Fields, table: &Fields, match_by: MatchBy) -> Result<Fields> {
    physical
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let counterpart = table.iter().find(|candidate| match match_by {
                MatchBy::FieldId => {
                    field_id(field).is_some_and(|id| field_id(candidate) == Some(id))
                }
                MatchBy::MappedName => mapped_names(candidate).contains(field.name()),
            });
            let renamed = match counterpart {
                Some(table_field) => {
                    let data_type =
                        rename_type(field.data_type(), table_field.data_type(), match_by)
                            .map_err(|e| e.context(format!("column `{}`", table_field.name())))?;
                    field
                        .as_ref()
                        .clone()
                        .with_name(table_field.name())
                        .with_data_type(data_type)
                }
                None => field
                    .as_ref()
                    .clone()
                    .with_name(format!("__floe_unmapped_column_{index}")),
            };
            Ok(Arc::new(renamed))
        })
        .collect()
}

/// `physical` with the names of its nested fields taken from `table`'s. List elements and map
/// entries keep their own names (they are positional); what they hold is renamed.
fn rename_type(physical: &DataType, table: &DataType, match_by: MatchBy) -> Result<DataType> {
    let inner = |p: &FieldRef, t: &FieldRef| -> Result<FieldRef> {
        let renamed = rename_type(p.data_type(), t.data_type(), match_by)?;
        // Arrow casts the structs inside lists and maps by position when their names differ,
        // which would move values between fields: refuse rather than read wrong values.
        if !same_nested_names(&renamed, t.data_type()) {
            return not_impl_err!(
                "a struct inside a list or map whose fields differ from the table's (a nested \
                 field added, dropped or re-added since the file was written)"
            );
        }
        Ok(Arc::new(p.as_ref().clone().with_data_type(renamed)))
    };
    Ok(match (physical, table) {
        (DataType::Struct(p), DataType::Struct(t)) => {
            DataType::Struct(rename_fields(p, t, match_by)?)
        }
        (DataType::List(p), DataType::List(t) | DataType::LargeList(t)) => {
            DataType::List(inner(p, t)?)
        }
        (DataType::LargeList(p), DataType::List(t) | DataType::LargeList(t)) => {
            DataType::LargeList(inner(p, t)?)
        }
        (DataType::Map(p, sorted), DataType::Map(t, _)) => match (p.data_type(), t.data_type()) {
            // Key and value pair up by position: the format fixes their order.
            (DataType::Struct(pk), DataType::Struct(tk)) if pk.len() == 2 && tk.len() == 2 => {
                let entries = pk
                    .iter()
                    .zip(tk.iter())
                    .map(|(p, t)| inner(p, t))
                    .collect::<Result<Fields>>()?;
                let entries = p.as_ref().clone().with_data_type(DataType::Struct(entries));
                DataType::Map(Arc::new(entries), *sorted)
            }
            _ => physical.clone(),
        },
        _ => physical.clone(),
    })
}

/// Whether every struct within `file` has the fields of the struct at the same place in
/// `table`, by name, so that a cast of `file` to `table` matches them by name.
fn same_nested_names(file: &DataType, table: &DataType) -> bool {
    match (file, table) {
        (DataType::Struct(f), DataType::Struct(t)) => {
            f.len() == t.len()
                && f.iter().all(|field| {
                    t.iter()
                        .find(|c| c.name() == field.name())
                        .is_some_and(|c| same_nested_names(field.data_type(), c.data_type()))
                })
        }
        (
            DataType::List(f) | DataType::LargeList(f),
            DataType::List(t) | DataType::LargeList(t),
        ) => same_nested_names(f.data_type(), t.data_type()),
        (DataType::Map(f, _), DataType::Map(t, _)) => match (f.data_type(), t.data_type()) {
            (DataType::Struct(fk), DataType::Struct(tk)) if fk.len() == tk.len() => fk
                .iter()
                .zip(tk.iter())
                .all(|(f, t)| same_nested_names(f.data_type(), t.data_type())),
            _ => true,
        },
        _ => true,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{BinaryExpr, lit};

    use super::*;

    fn field(name: &str, id: i32, data_type: DataType) -> Field {
        Field::new(name, data_type, true).with_metadata(HashMap::from([(
            PARQUET_FIELD_ID_META_KEY.to_string(),
            id.to_string(),
        )]))
    }

    #[test]
    fn renamed_and_readded_columns_resolve_by_id() {
        // Table: id(1) -> renamed to `key`; `name`(3) re-added after dropping the old `name`(2).
        let logical = Arc::new(Schema::new(vec![
            field("key", 1, DataType::Int64),
            field("name", 3, DataType::Utf8),
        ]));
        let physical = Arc::new(Schema::new(vec![
            field("id", 1, DataType::Int32),
            field("name", 2, DataType::Utf8),
        ]));
        let adapter = FieldIdAdapterFactory::for_table(&logical)
            .create(logical, Arc::clone(&physical))
            .unwrap();

        let key = adapter.rewrite(Arc::new(Column::new("key", 0))).unwrap();
        // Promoted int -> long, read from the file's column `id` at index 0.
        let shown = format!("{key}");
        assert!(shown.contains("id@0"), "{shown}");

        let name = adapter.rewrite(Arc::new(Column::new("name", 1))).unwrap();
        assert_eq!(
            format!("{name}"),
            "NULL",
            "old `name` (id 2) must not be read as new `name`"
        );

        let predicate: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("key", 0)),
            Operator::Gt,
            lit(5i64),
        ));
        let shown = format!("{}", adapter.rewrite(predicate).unwrap());
        assert!(shown.contains("id@0"), "{shown}");
    }

    #[test]
    fn a_changed_struct_inside_a_list_is_refused_not_misread() {
        let element = |fields: Vec<Field>| {
            DataType::List(Arc::new(field(
                "element",
                5,
                DataType::Struct(Fields::from(fields)),
            )))
        };
        // The table dropped `b` (id 3) and added `c` (id 4): a positional cast would read `b`'s
        // values as `c`.
        let table = Arc::new(Schema::new(vec![field(
            "l",
            1,
            element(vec![
                field("a", 2, DataType::Int32),
                field("c", 4, DataType::Int32),
            ]),
        )]));
        let file = Arc::new(Schema::new(vec![field(
            "l",
            1,
            element(vec![
                field("a", 2, DataType::Int32),
                field("b", 3, DataType::Int32),
            ]),
        )]));
        let err = FieldIdAdapterFactory::for_table(&table)
            .create(Arc::clone(&table), file)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("column `l`") && err.contains("inside a list or map"),
            "{err}"
        );
        // Unchanged, it reads.
        assert!(
            FieldIdAdapterFactory::for_table(&table)
                .create(Arc::clone(&table), Arc::clone(&table))
                .is_ok()
        );
    }
}
