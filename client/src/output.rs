//! Printing statement results as a table, CSV or JSON, with a row-count and timing footer.

use std::io::Write;
use std::time::Duration;

use arrow::util::pretty::pretty_format_batches;
use floe_core::StatementOutput;

/// How result rows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A boxed text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON array of row objects.
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
                    if output.batches.is_empty() {
                        let empty = arrow::array::RecordBatch::new_empty(std::sync::Arc::clone(
                            &output.schema,
                        ));
                        writer.write(&empty).map_err(|e| e.to_string())?;
                    }
                    for batch in &output.batches {
                        writer.write(batch).map_err(|e| e.to_string())?;
                    }
                }
                OutputFormat::Json => {
                    let mut writer = arrow_json::ArrayWriter::new(&mut stdout);
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
