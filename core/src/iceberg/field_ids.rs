//! Maps a data file's columns to the table's columns by Iceberg field id, not by name.
//!
//! DataFusion's Parquet reader matches file columns to table columns by name. Iceberg tables
//! evolve (columns are renamed, dropped and re-added under an old name), so names in an old file
//! can be wrong in both directions. Every Parquet file Iceberg writers produce carries each
//! column's field id in the `PARQUET:field_id` metadata; this adapter resolves columns through
//! it, then lets DataFusion's default adapter insert the casts and null-fills.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr_adapter::{
    DefaultPhysicalExprAdapterFactory, PhysicalExprAdapter, PhysicalExprAdapterFactory,
};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;

/// Creates [`FieldIdExprAdapter`]s for the files of one Iceberg scan.
///
/// The table's field ids are taken once from the table's Arrow schema rather than from the
/// schema the scan outputs: plans carry no field-id metadata (it would leak into every schema
/// above the scan, and DataFusion rejects a UNION whose inputs' field metadata differ).
#[derive(Debug, Default, Clone)]
pub struct FieldIdAdapterFactory {
    names_by_id: Arc<HashMap<i32, String>>,
}

impl FieldIdAdapterFactory {
    /// An adapter factory for a table whose Arrow schema `table_schema` carries field ids.
    pub fn for_table(table_schema: &Schema) -> Self {
        let names_by_id = table_schema
            .fields()
            .iter()
            .filter_map(|f| Some((field_id(f)?, f.name().clone())))
            .collect();
        Self {
            names_by_id: Arc::new(names_by_id),
        }
    }
}

/// `schema` without the `PARQUET:field_id` metadata on its fields.
pub fn without_field_ids(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| {
            let mut metadata = field.metadata().clone();
            metadata.remove(PARQUET_FIELD_ID_META_KEY);
            field.as_ref().clone().with_metadata(metadata)
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

impl PhysicalExprAdapterFactory for FieldIdAdapterFactory {
    fn create(
        &self,
        logical_file_schema: SchemaRef,
        physical_file_schema: SchemaRef,
    ) -> Result<Arc<dyn PhysicalExprAdapter>> {
        let renamed = rename_by_field_id(&self.names_by_id, &physical_file_schema);
        let inner =
            DefaultPhysicalExprAdapterFactory.create(logical_file_schema, Arc::clone(&renamed))?;
        Ok(Arc::new(FieldIdExprAdapter {
            inner,
            physical_file_schema,
        }))
    }
}

/// Rewrites table-level expressions to a file whose columns are matched by field id.
#[derive(Debug)]
pub struct FieldIdExprAdapter {
    inner: Arc<dyn PhysicalExprAdapter>,
    physical_file_schema: SchemaRef,
}

impl PhysicalExprAdapter for FieldIdExprAdapter {
    fn rewrite(&self, expr: Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
        let adapted = self.inner.rewrite(expr)?;
        // The default adapter resolved columns against the renamed view of the file schema; the
        // reader later resolves them by name against the real file schema, so restore the
        // file's own names (the indices are the same in both views).
        adapted
            .transform(|node| {
                if let Some(column) = node.as_any().downcast_ref::<Column>()
                    && let Some(field) = self.physical_file_schema.fields().get(column.index())
                    && field.name() != column.name()
                {
                    let restored: Arc<dyn PhysicalExpr> =
                        Arc::new(Column::new(field.name(), column.index()));
                    return Ok(Transformed::yes(restored));
                }
                Ok(Transformed::no(node))
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

/// A view of the file schema in which each column carries the table's name for its field id.
/// Columns whose id the table no longer has get a name no table column can match. Files without
/// any field ids (written by tools that ignore the spec) keep their names: name mapping.
fn rename_by_field_id(logical_names: &HashMap<i32, String>, physical: &SchemaRef) -> SchemaRef {
    if physical.fields().iter().all(|f| field_id(f).is_none()) {
        return Arc::clone(physical);
    }
    let fields: Vec<Field> = physical
        .fields()
        .iter()
        .enumerate()
        .map(|(index, f)| {
            let name = match field_id(f).and_then(|id| logical_names.get(&id)) {
                Some(name) => name.clone(),
                None => format!("__floe_unmapped_column_{index}"),
            };
            f.as_ref().clone().with_name(name)
        })
        .collect();
    Arc::new(Schema::new_with_metadata(
        fields,
        physical.metadata().clone(),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use arrow::datatypes::DataType;
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
}
