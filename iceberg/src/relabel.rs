//! Relabels nested field names of a column read from a data file, without touching its data.
//!
//! When a table renames a field inside a struct (or a list's or map's struct), old files still
//! carry the old name. [`super::field_ids`] matches such fields by field id and describes the
//! file's column with the table's names; this expression gives the arrays read from the file
//! those names, so DataFusion's name-based struct casts then find every field.

use std::any::Any;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{ArrayData, make_array};
use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::common::Result;
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;

/// `child` with its type replaced by `to`, a type with the same layout and other field names.
#[derive(Debug, Eq)]
pub struct RelabelExpr {
    child: Arc<dyn PhysicalExpr>,
    to: DataType,
}

impl RelabelExpr {
    /// Relabels `child`'s values as `to`.
    pub fn new(child: Arc<dyn PhysicalExpr>, to: DataType) -> Self {
        Self { child, to }
    }
}

impl PartialEq for RelabelExpr {
    fn eq(&self, other: &Self) -> bool {
        self.child.eq(&other.child) && self.to == other.to
    }
}

impl Hash for RelabelExpr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.child.hash(state);
        self.to.hash(state);
    }
}

impl fmt::Display for RelabelExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "relabel({})", self.child)
    }
}

impl PhysicalExpr for RelabelExpr {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn data_type(&self, _input_schema: &Schema) -> Result<DataType> {
        Ok(self.to.clone())
    }

    fn nullable(&self, input_schema: &Schema) -> Result<bool> {
        self.child.nullable(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        Ok(match self.child.evaluate(batch)? {
            ColumnarValue::Array(array) => {
                ColumnarValue::Array(make_array(relabel(array.to_data(), &self.to)?))
            }
            ColumnarValue::Scalar(scalar) => {
                let array = scalar.to_array()?;
                let relabeled = make_array(relabel(array.to_data(), &self.to)?);
                ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(
                    &relabeled, 0,
                )?)
            }
        })
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.child]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let child = children.into_iter().next().ok_or_else(|| {
            datafusion::common::DataFusionError::Internal("relabel takes one child".into())
        })?;
        Ok(Arc::new(Self::new(child, self.to.clone())))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.child.fmt_sql(f)
    }
}

/// `data` typed as `to`, its children relabeled likewise; leaves are unchanged.
fn relabel(data: ArrayData, to: &DataType) -> Result<ArrayData> {
    let child_types: Vec<&DataType> = match to {
        DataType::Struct(fields) => fields.iter().map(|f| f.data_type()).collect(),
        DataType::List(element)
        | DataType::LargeList(element)
        | DataType::FixedSizeList(element, _)
        | DataType::Map(element, _) => vec![element.data_type()],
        _ => return Ok(data),
    };
    let children = data
        .child_data()
        .iter()
        .zip(child_types)
        .map(|(child, to)| relabel(child.clone(), to))
        .collect::<Result<Vec<_>>>()?;
    Ok(data
        .into_builder()
        .data_type(to.clone())
        .child_data(children)
        .build()?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use arrow::array::{Array, Int32Array, StructArray};
    use arrow::datatypes::{Field, Fields};

    use super::*;

    #[test]
    fn struct_fields_take_the_new_names_and_keep_their_values() {
        let old = StructArray::from(vec![(
            Arc::new(Field::new("b", DataType::Int32, true)),
            Arc::new(Int32Array::from(vec![1, 2])) as _,
        )]);
        let to = DataType::Struct(Fields::from(vec![Field::new("bee", DataType::Int32, true)]));
        let relabeled = make_array(relabel(old.to_data(), &to).unwrap());
        assert_eq!(relabeled.data_type(), &to);
        let relabeled = relabeled.as_any().downcast_ref::<StructArray>().unwrap();
        let values = relabeled.column_by_name("bee").unwrap();
        assert_eq!(
            values
                .as_any()
                .downcast_ref::<Int32Array>()
                .unwrap()
                .values(),
            &[1, 2]
        );
    }
}
