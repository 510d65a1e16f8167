//! Values of every Arrow type a query can return as JSON: the shell's `json` format, and the
//! nested columns (struct, list, map, union) of its `csv` format, which CSV has no form for.
//!
//! arrow-json encodes almost every type (binary as hex, temporal types and intervals as text,
//! decimals as numbers). Two gaps are filled through its [`EncoderFactory`] hook, so that no
//! result fails to print:
//! - a map whose keys are not strings (Iceberg's `files` metadata table keys its column statistics
//!   by field id) becomes an object keyed by each key's text, as DuckDB's `to_json` does;
//! - a type arrow-json cannot encode at all (a union) becomes its display text, a JSON string.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, MapArray, StringBuilder};
use arrow::datatypes::{DataType, FieldRef};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use arrow_json::writer::{
    ArrayWriter, Encoder, EncoderFactory, EncoderOptions, JsonArray, NullableEncoder, make_encoder,
};

/// A writer of one JSON array of row objects, with [`FloeEncoders`].
pub fn json_writer<W: Write>(out: W) -> ArrayWriter<W> {
    arrow_json::WriterBuilder::new()
        .with_encoder_factory(Arc::new(FloeEncoders))
        .build::<_, JsonArray>(out)
}

/// The column as text for CSV: nested values as JSON text, nulls as nulls (CSV's empty field).
/// Columns of other types are returned as they are; the CSV writer prints those itself.
pub fn csv_column(field: &FieldRef, column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    if !column.data_type().is_nested() {
        return Ok(Arc::clone(column));
    }
    let options = EncoderOptions::default().with_encoder_factory(Arc::new(FloeEncoders));
    let mut encoder = make_encoder(field, column.as_ref(), &options)?;
    let mut text = StringBuilder::with_capacity(column.len(), column.len() * 16);
    let mut value = Vec::new();
    for row in 0..column.len() {
        if encoder.is_null(row) {
            text.append_null();
            continue;
        }
        value.clear();
        encoder.encode(row, &mut value);
        text.append_value(String::from_utf8_lossy(&value));
    }
    Ok(Arc::new(text.finish()))
}

/// Floe's additions to arrow-json's encoders (see the module docs).
#[derive(Debug)]
struct FloeEncoders;

impl EncoderFactory for FloeEncoders {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a FieldRef,
        array: &'a dyn Array,
        options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        let encoder: Box<dyn Encoder + 'a> = match array.data_type() {
            DataType::Map(_, _) => {
                let map = array.as_map();
                if matches!(
                    map.keys().data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) {
                    return Ok(None);
                }
                Box::new(TextKeyMapEncoder::try_new(map, options)?)
            }
            DataType::Union(_, _) => Box::new(DisplayTextEncoder(ArrayFormatter::try_new(
                array,
                &FormatOptions::default(),
            )?)),
            _ => return Ok(None),
        };
        Ok(Some(NullableEncoder::new(encoder, array.logical_nulls())))
    }
}

/// A map with non-string keys as a JSON object keyed by each key's display text.
struct TextKeyMapEncoder<'a> {
    map: &'a MapArray,
    keys: ArrayFormatter<'a>,
    values: NullableEncoder<'a>,
}

impl<'a> TextKeyMapEncoder<'a> {
    fn try_new(map: &'a MapArray, options: &'a EncoderOptions) -> Result<Self, ArrowError> {
        let keys = ArrayFormatter::try_new(map.keys().as_ref(), &FormatOptions::default())?;
        let value_field = &map.entries().fields()[1];
        let values = make_encoder(value_field, map.values().as_ref(), options)?;
        Ok(Self { map, keys, values })
    }
}

impl Encoder for TextKeyMapEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let offsets = self.map.value_offsets();
        let (start, end) = (offsets[idx] as usize, offsets[idx + 1] as usize);
        out.push(b'{');
        for entry in start..end {
            if entry > start {
                out.push(b',');
            }
            write_json_string(&self.keys.value(entry).to_string(), out);
            out.push(b':');
            if self.values.is_null(entry) {
                out.extend_from_slice(b"null");
            } else {
                self.values.encode(entry, out);
            }
        }
        out.push(b'}');
    }
}

/// Any value as its display text, a JSON string.
struct DisplayTextEncoder<'a>(ArrayFormatter<'a>);

impl Encoder for DisplayTextEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        write_json_string(&self.0.value(idx).to_string(), out);
    }
}

fn write_json_string(text: &str, out: &mut Vec<u8>) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}
