//! The interactive loop: multi-line statements, history, and Ctrl-C that cancels the running
//! statement without leaving the shell.

use std::path::PathBuf;
use std::time::Instant;

use floe_sql::{is_complete, split_statements};
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::output::Printer;
use floe_client::remote::{Connection, StatementError};

/// Most lines kept in the history file.
const HISTORY_MAX_LINES: usize = 10_000;

/// Runs one statement, printing its result or error. Returns whether it succeeded; Ctrl-C
/// while it runs cancels it on the cluster and counts as failed.
pub async fn run_statement(connection: &mut Connection, printer: &Printer, sql: &str) -> bool {
    let started = Instant::now();
    match connection.execute(sql).await {
        Ok(output) => match printer.print(&output, started.elapsed()) {
            Ok(()) => true,
            Err(err) => {
                eprintln!("Error: cannot print result: {err}");
                false
            }
        },
        Err(StatementError::Cancelled) => {
            eprintln!("Cancelled after {:.3}s", started.elapsed().as_secs_f64());
            false
        }
        Err(StatementError::TimedOut(limit)) => {
            eprintln!("Timed out after {:.3}s", limit.as_secs_f64());
            false
        }
        Err(StatementError::Failed(message)) => {
            eprintln!("Error: {message}");
            false
        }
    }
}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".floe_history"))
}

/// The interactive shell; returns when the user quits.
pub async fn run(connection: &mut Connection, printer: &Printer) -> Result<(), String> {
    let config = rustyline::Config::builder()
        .max_history_size(HISTORY_MAX_LINES)
        .map_err(|e| e.to_string())?
        .auto_add_history(false)
        .build();
    let mut editor = DefaultEditor::with_config(config).map_err(|e| e.to_string())?;
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    println!(
        "Floe {} — statements end with `;`, \\q quits, Ctrl-C cancels.",
        env!("CARGO_PKG_VERSION")
    );
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "floe> "
        } else {
            "   -> "
        };
        let line = tokio::task::block_in_place(|| editor.readline(prompt));
        match line {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty()
                    && matches!(trimmed, "\\q" | "quit" | "exit" | "quit;" | "exit;")
                {
                    break;
                }
                if !buffer.is_empty() {
                    buffer.push('\n');
                }
                buffer.push_str(&line);
                if !is_complete(&buffer) {
                    continue;
                }
                let _ = editor.add_history_entry(buffer.as_str());
                let script = std::mem::take(&mut buffer);
                for statement in split_statements(&script) {
                    if !run_statement(connection, printer, &statement).await {
                        break;
                    }
                }
            }
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
            }
            Err(ReadlineError::Eof) => break,
            Err(err) => return Err(err.to_string()),
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}
