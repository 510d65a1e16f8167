//! Printing statement results as a table, CSV or JSON, with a row-count and timing footer.

use std::io::Write;
use std::time::Duration;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;
use arrow::util::pretty::pretty_format_batches;
use floe_core::StatementOutput;

use crate::json_values::{csv_column, json_writer};

/// How result rows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A boxed text table.
    Table,
    /// CSV with a header row; struct, list and map values as JSON text.
    Csv,
    /// One JSON array of row objects; nested values as JSON objects and arrays.
    Json,
}

/// Prints results to stdout; footers go to stdout for tables and to stderr for CSV/JSON, so
/// that machine-readable output stays clean when piped.
#[derive(Debug, Clone)]
pub struct Printer {
    format: OutputFormat,
    quiet: bool,
}

impl Printer {
    /// A printer in `format`; `quiet` drops footers.
    pub fn new(format: OutputFormat, quiet: bool) -> Self {
        Self { format, quiet }
    }

    /// Prints one statement's result and its footer.
    pub fn print(&self, output: &StatementOutput, elapsed: Duration) -> Result<(), String> {
        let mut stdout = std::io::stdout().lock();
        let has_columns = !output.schema.fields().is_empty();
        if has_columns {
            match self.format {
                OutputFormat::Table => {
                    let text = if output.row_count() == 0 {
                        let header: Vec<&str> = output
                            .schema
                            .fields()
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect();
                        format!("(no rows; columns: {})", header.join(", "))
                    } else {
                        pretty_format_batches(&output.batches)
                            .map_err(|e| e.to_string())?
                            .to_string()
                    };
                    writeln!(stdout, "{text}").map_err(|e| e.to_string())?;
                }
                OutputFormat::Csv => {
                    let mut writer = arrow_csv::WriterBuilder::new()
                        .with_header(true)
                        .build(&mut stdout);
                    let schema = Arc::new(csv_schema(&output.schema));
                    if output.batches.is_empty() {
                        let empty = RecordBatch::new_empty(Arc::clone(&schema));
                        writer.write(&empty).map_err(|e| e.to_string())?;
                    }
                    for batch in &output.batches {
                        let batch = csv_batch(batch, &schema).map_err(|e| e.to_string())?;
                        writer.write(&batch).map_err(|e| e.to_string())?;
                    }
                }
                OutputFormat::Json => {
                    let mut writer = json_writer(&mut stdout);
                    for batch in &output.batches {
                        writer.write(batch).map_err(|e| e.to_string())?;
                    }
                    writer.finish().map_err(|e| e.to_string())?;
                    drop(writer);
                    if output.row_count() == 0 {
                        write!(stdout, "[]").map_err(|e| e.to_string())?;
                    }
                    writeln!(stdout).map_err(|e| e.to_string())?;
                }
            }
        }
        if let Some(summary) = &output.summary {
            match self.format {
                OutputFormat::Table => writeln!(stdout, "{summary}").map_err(|e| e.to_string())?,
                _ => eprintln!("{summary}"),
            }
        }
        if !self.quiet {
            let footer = if has_columns {
                let rows = output.row_count();
                let noun = if rows == 1 { "row" } else { "rows" };
                format!("{rows} {noun} in {:.3}s", elapsed.as_secs_f64())
            } else {
                format!("OK in {:.3}s", elapsed.as_secs_f64())
            };
            match self.format {
                OutputFormat::Table => writeln!(stdout, "{footer}").map_err(|e| e.to_string())?,
                _ => eprintln!("{footer}"),
            }
        }
        stdout.flush().map_err(|e| e.to_string())
    }
}

/// The schema CSV is written with: nested columns become text (their values as JSON).
fn csv_schema(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| {
            if field.data_type().is_nested() {
                Field::new(field.name(), DataType::Utf8, true)
            } else {
                // The CSV writer never checks nullability; batches need not agree on it.
                field.as_ref().clone().with_nullable(true)
            }
        })
        .collect();
    Schema::new(fields)
}

/// `batch` with its nested columns as JSON text, under `csv_schema` of its schema.
fn csv_batch(batch: &RecordBatch, csv_schema: &Arc<Schema>) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| csv_column(field, column))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::clone(csv_schema), columns)
}
