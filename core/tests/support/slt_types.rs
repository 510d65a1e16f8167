//! The sqllogictest column type of an Arrow type, shared by every `.slt` runner (floe-core's
//! single-process one and floe-client's cluster ones), so all compare results alike.

use arrow::datatypes::DataType;
use sqllogictest::DefaultColumnType;

pub fn column_type(data_type: &DataType) -> DefaultColumnType {
    match data_type {
        t if t.is_integer() => DefaultColumnType::Integer,
        t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => {
            DefaultColumnType::FloatingPoint
        }
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => DefaultColumnType::Text,
        _ => DefaultColumnType::Any,
    }
}
