//! The peers Floe is measured against, and the comparison of Floe's times with theirs:
//! single-process DataFusion in this process (`--compare`), and an external engine run as a
//! command after all of Floe's rounds (`--peer-command`, `--duckdb`), whose per-query CSV is
//! parsed and merged into the [`RunReport`].
//!
//! An external peer is told what to run through environment variables ([`OUTPUT_ENV`] and its
//! neighbours). They point into a scratch directory holding the query texts this harness runs
//! (so that both engines run the same text) and, for `--duckdb`, the bundled DuckDB script.

use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use floe_core::FloeSession;
use indicatif::ProgressBar;

use super::{MIN_SECONDS, QueryRun, RunReport, geometric_mean, record, total};
use crate::answers::{Answer, compare_text};
use crate::error::Result;
use crate::queries::{orders_result, query_text};

/// The bundled DuckDB runner, `benchmarks/tpcds/peers/duckdb_run.py`.
pub const DUCKDB_SCRIPT: &str = include_str!("../peers/duckdb_run.py");

/// Environment variable: the CSV the external peer must write
/// (`query,median_s,min_s,max_s,rows,status`).
pub const OUTPUT_ENV: &str = "FLOE_TPCDS_PEER_OUTPUT";
/// Environment variable: the tables' namespace, without the catalog.
pub const NAMESPACE_ENV: &str = "FLOE_TPCDS_NAMESPACE";
/// Environment variable: times each query runs.
pub const ROUNDS_ENV: &str = "FLOE_TPCDS_ROUNDS";
/// Environment variable: the queries, `qNN` separated by commas.
pub const QUERIES_ENV: &str = "FLOE_TPCDS_QUERIES";
/// Environment variable: seconds one execution may take (set only with a time limit).
pub const TIMEOUT_ENV: &str = "FLOE_TPCDS_TIMEOUT";
/// Environment variable: directory of the query texts, `qNN.sql`.
pub const QUERY_DIR_ENV: &str = "FLOE_TPCDS_QUERY_DIR";

/// Environment variable: directory to write each query's first result to as `qNN.csv`, in the
/// reference answers' form (set only when asked for).
pub const ANSWERS_ENV: &str = "FLOE_TPCDS_PEER_ANSWERS";

/// File names inside the scratch directory.
const QUERY_DIR_NAME: &str = "queries";
const OUTPUT_NAME: &str = "peer.csv";
const DUCKDB_SCRIPT_NAME: &str = "duckdb_run.py";

/// Floe this many times slower than a peer on a query is counted in the summary.
const FAR_SLOWER_RATIO: f64 = 5.0;

/// One query's rounds on single-process DataFusion; its first result is compared with Floe's.
pub(super) async fn run_on_peer(
    peer: &FloeSession,
    run: &mut QueryRun,
    rounds: usize,
    timeout: Option<Duration>,
    progress: &ProgressBar,
) -> Result<()> {
    let sql = query_text(&run.name)?;
    progress.set_message(format!("{} on single-process DataFusion", run.name));
    for round in 0..rounds {
        let started = Instant::now();
        let outcome = within(timeout, peer.execute_statement(sql)).await;
        let elapsed = started.elapsed();
        progress.inc(1);
        let note = match outcome {
            Some(Ok(output)) => {
                run.peer_times.push(elapsed);
                if round == 0 {
                    compare_with_peer(run, sql, &output.batches)?;
                }
                continue;
            }
            Some(Err(err)) => format!("single-process DataFusion failed: {err}"),
            None => {
                // As on Floe, the rounds a query did finish would flatter it.
                run.peer_times.clear();
                format!(
                    "single-process DataFusion timed out after {:.1} s",
                    elapsed.as_secs_f64()
                )
            }
        };
        run.notes.push(note);
        progress.inc((rounds - round - 1) as u64);
        break;
    }
    progress.suspend(|| eprintln!("{}", run.line("single-process DataFusion")));
    Ok(())
}

/// `future`'s output, or none if `limit` passed first (dropping the future stops it).
async fn within<F: Future>(limit: Option<Duration>, future: F) -> Option<F::Output> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, future).await.ok(),
        None => Some(future.await),
    }
}

fn compare_with_peer(run: &mut QueryRun, sql: &str, peer_batches: &[RecordBatch]) -> Result<()> {
    let Some(result) = &run.result else {
        return Ok(());
    };
    // The peer's rows play the answer; Floe's rows are compared with them.
    let peer = Answer {
        columns: result.columns.clone(),
        rows: floe_core::text_rows::rows_as_text(peer_batches)?,
    };
    let mismatches = compare_text(&peer, &result.rows, orders_result(sql));
    record(run, "single-process DataFusion", mismatches);
    Ok(())
}

/// How to start the external peer.
#[derive(Debug, Clone)]
pub enum PeerCommand {
    /// A shell command (`sh -c`), told what to run through the environment.
    Shell(String),
    /// The bundled DuckDB script, run by `python` over the Parquet files of the local
    /// (SQLite-catalogued) warehouse `warehouse`.
    DuckDb {
        /// A Python with `duckdb` and `pyiceberg` installed.
        python: PathBuf,
        /// The warehouse directory (holding `catalog.db`).
        warehouse: PathBuf,
    },
}

/// What the external peer runs: what Floe ran.
#[derive(Debug, Clone)]
pub struct PeerJob {
    /// Namespace of the tables, without the catalog.
    pub namespace: String,
    /// Times each query runs.
    pub rounds: usize,
    /// Query names (`qNN`).
    pub queries: Vec<String>,
    /// Longest one execution may take (none: no limit).
    pub timeout: Option<Duration>,
    /// Threads the peer may use (DuckDB's `--threads`).
    pub threads: usize,
    /// Directory the peer writes each query's first result to, as a reference answer
    /// (`qNN.csv`), so that Floe can be checked against it; none: results are only counted.
    pub answers: Option<PathBuf>,
}

/// Runs the external peer to completion and parses the CSV it wrote. Blocks while it runs; its
/// output and errors go to this process's. The error names the command and how it ended.
pub fn run_external(command: &PeerCommand, job: &PeerJob) -> Result<Vec<ExternalResult>, String> {
    let scratch = ScratchDir::create()?;
    let query_dir = scratch.path.join(QUERY_DIR_NAME);
    write_queries(&query_dir, &job.queries)?;
    let output = scratch.path.join(OUTPUT_NAME);
    let (mut process, shown) = match command {
        PeerCommand::Shell(line) => {
            let mut process = Command::new("sh");
            process.arg("-c").arg(line);
            (process, line.clone())
        }
        PeerCommand::DuckDb { python, warehouse } => {
            let script = scratch.path.join(DUCKDB_SCRIPT_NAME);
            std::fs::write(&script, DUCKDB_SCRIPT).map_err(at(&script))?;
            duckdb_command(python, &script, warehouse, &query_dir, &output, job)
        }
    };
    process
        .env(OUTPUT_ENV, &output)
        .env(NAMESPACE_ENV, &job.namespace)
        .env(ROUNDS_ENV, job.rounds.to_string())
        .env(QUERIES_ENV, job.queries.join(","))
        .env(QUERY_DIR_ENV, &query_dir);
    if let Some(timeout) = job.timeout {
        process.env(TIMEOUT_ENV, timeout.as_secs_f64().to_string());
    }
    if let Some(answers) = &job.answers {
        process.env(ANSWERS_ENV, answers);
    }
    let status = process
        .status()
        .map_err(|e| format!("peer command `{shown}` did not start: {e}"))?;
    if !status.success() {
        return Err(format!("peer command `{shown}` failed ({status})"));
    }
    let text = std::fs::read_to_string(&output).map_err(|e| {
        let path = output.display();
        format!("peer command `{shown}` wrote no CSV to {path} ({status}): {e}")
    })?;
    parse_peer_csv(&text).map_err(|e| format!("peer command `{shown}` wrote a bad CSV: {e}"))
}

/// The command running the DuckDB script, and how to show it in messages.
fn duckdb_command(
    python: &Path,
    script: &Path,
    warehouse: &Path,
    query_dir: &Path,
    output: &Path,
    job: &PeerJob,
) -> (Command, String) {
    let mut args = vec![
        script.display().to_string(),
        "--warehouse".to_string(),
        warehouse.display().to_string(),
        "--namespace".to_string(),
        job.namespace.clone(),
        "--rounds".to_string(),
        job.rounds.to_string(),
        "--threads".to_string(),
        job.threads.to_string(),
        "--queries".to_string(),
        job.queries.join(","),
        "--query-dir".to_string(),
        query_dir.display().to_string(),
        "--output".to_string(),
        output.display().to_string(),
    ];
    if let Some(timeout) = job.timeout {
        args.push("--timeout".to_string());
        args.push(timeout.as_secs_f64().to_string());
    }
    if let Some(answers) = &job.answers {
        args.push("--answers".to_string());
        args.push(answers.display().to_string());
    }
    let shown = format!("{} {}", python.display(), args.join(" "));
    let mut command = Command::new(python);
    command.args(&args);
    (command, shown)
}

/// Writes each query's text to `dir/qNN.sql`.
fn write_queries(dir: &Path, queries: &[String]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    for name in queries {
        let text = query_text(name).map_err(|e| e.to_string())?;
        let path = dir.join(format!("{name}.sql"));
        std::fs::write(&path, text).map_err(at(&path))?;
    }
    Ok(())
}

/// An I/O error as a message naming `path`.
fn at(path: &Path) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// A directory of this process's, removed when dropped.
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    fn create() -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!("floe-tpcds-peer-{}", std::process::id()));
        // A directory left by an earlier process with the same id holds nothing of ours.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(at(&path))?;
        Ok(Self { path })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// One query's outcome on an external peer, as its CSV reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalResult {
    /// `qNN`.
    pub query: String,
    /// Median of its rounds (none: the peer did not finish the query).
    pub median: Option<Duration>,
    /// The peer's status (`ran`, `error`, `timeout`, ...).
    pub status: String,
}

/// Where an external peer's CSV keeps the cells this harness reads.
struct PeerColumns {
    query: usize,
    median: usize,
    status: Option<usize>,
}

/// Parses an external peer's CSV: a header naming at least `query` and `median_s` (and
/// usually `status`), then a row per query. An empty `median_s` is a query the peer did not
/// finish.
pub fn parse_peer_csv(text: &str) -> Result<Vec<ExternalResult>, String> {
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty CSV")?
        .split(',')
        .map(str::trim)
        .collect();
    let position = |name: &str| header.iter().position(|column| *column == name);
    let (Some(query), Some(median)) = (position("query"), position("median_s")) else {
        return Err(format!(
            "header `{}` lacks query or median_s",
            header.join(",")
        ));
    };
    let columns = PeerColumns {
        query,
        median,
        status: position("status"),
    };
    lines.map(|line| parse_peer_row(line, &columns)).collect()
}

fn parse_peer_row(line: &str, columns: &PeerColumns) -> Result<ExternalResult, String> {
    let cells: Vec<&str> = line.split(',').map(str::trim).collect();
    let cell = |index: usize| cells.get(index).copied().unwrap_or_default();
    let median = match cell(columns.median) {
        "" => None,
        seconds => Some(
            seconds
                .parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or_else(|| format!("`{seconds}` is not a time in seconds: {line}"))?,
        ),
    };
    let fallback = if median.is_some() {
        "ran"
    } else {
        "unfinished"
    };
    let status = columns.status.map(cell).filter(|status| !status.is_empty());
    Ok(ExternalResult {
        query: cell(columns.query).to_string(),
        median,
        status: status.unwrap_or(fallback).to_string(),
    })
}

/// `name` as a CSV column prefix: lowercase, anything but ASCII letters and digits as `_`. Not
/// `peer` when single-process DataFusion's `peer_*` columns are there too.
pub(super) fn column_label(name: &str, with_single_process_peer: bool) -> String {
    let label: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if with_single_process_peer && label == "peer" {
        "external".to_string()
    } else {
        label
    }
}

impl RunReport {
    /// Merges an external peer's results, matched by query name.
    pub fn set_external(&mut self, peer: &str, results: &[ExternalResult]) {
        self.external_peer = Some(peer.to_string());
        for run in &mut self.queries {
            let result = results.iter().find(|r| r.query == run.name);
            run.external_median = result.and_then(|r| r.median);
            run.external_status = result.map(|r| r.status.clone());
        }
    }

    /// The summary's lines comparing Floe with each peer that ran.
    pub(super) fn write_peer_comparisons(&self, text: &mut String) {
        let single_process = self.pairs(QueryRun::peer_median);
        write_comparison(text, "single-process DataFusion", &single_process);
        if let Some(peer) = &self.external_peer {
            write_comparison(text, peer, &self.pairs(|q| q.external_median));
            self.write_unfinished_by(text, peer);
        }
    }

    /// (Floe's median, the peer's) of the queries both finished.
    fn pairs(&self, theirs: impl Fn(&QueryRun) -> Option<Duration>) -> Vec<(Duration, Duration)> {
        self.queries
            .iter()
            .filter_map(|q| Some((q.median()?, theirs(q)?)))
            .collect()
    }

    /// The queries the external peer did not finish, with its status for each.
    fn write_unfinished_by(&self, text: &mut String, peer: &str) {
        let unfinished: Vec<String> = self
            .queries
            .iter()
            .filter(|q| q.external_median.is_none())
            .map(|q| {
                let status = q.external_status.as_deref().unwrap_or("not reported");
                format!("{} ({status})", q.name)
            })
            .collect();
        if !unfinished.is_empty() {
            let _ = writeln!(text, "{peer} did not finish: {}", unfinished.join(", "));
        }
    }
}

/// Compares Floe with `peer` over `pairs` (Floe's median, the peer's): only queries both
/// finished, so that neither total hides a query the other did not finish.
fn write_comparison(text: &mut String, peer: &str, pairs: &[(Duration, Duration)]) {
    if pairs.is_empty() {
        return;
    }
    let (floe, theirs): (Vec<_>, Vec<_>) = pairs.iter().copied().unzip();
    let _ = writeln!(
        text,
        "{peer}: total {:.2} s, geometric mean {:.3} s ({} queries both finished)",
        total(&theirs),
        geometric_mean(&theirs),
        theirs.len()
    );
    let _ = writeln!(
        text,
        "Floe on the same queries: total {:.2} s, geometric mean {:.3} s",
        total(&floe),
        geometric_mean(&floe)
    );
    let _ = writeln!(
        text,
        "Floe / {peer}: total {:.2}x, geometric mean {:.2}x",
        total(&floe) / total(&theirs).max(MIN_SECONDS),
        geometric_mean(&floe) / geometric_mean(&theirs).max(MIN_SECONDS)
    );
    let mut ratios: Vec<f64> = pairs
        .iter()
        .map(|&(ours, theirs)| ratio(ours, theirs))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let _ = writeln!(
        text,
        "Floe / {peer} per query: p10 {:.2}x, median {:.2}x, p90 {:.2}x; \
         {} queries over {FAR_SLOWER_RATIO}x",
        percentile(&ratios, 0.1),
        percentile(&ratios, 0.5),
        percentile(&ratios, 0.9),
        ratios.iter().filter(|&&r| r > FAR_SLOWER_RATIO).count()
    );
}

/// How many times longer `ours` took than `theirs`.
pub(super) fn ratio(ours: Duration, theirs: Duration) -> f64 {
    ours.as_secs_f64() / theirs.as_secs_f64().max(MIN_SECONDS)
}

/// The nearest-rank `fraction` percentile of ascending `sorted` (0 for none).
fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    let index = (sorted.len().saturating_sub(1) as f64 * fraction).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn external(query: &str, millis: Option<u64>, status: &str) -> ExternalResult {
        ExternalResult {
            query: query.into(),
            median: millis.map(Duration::from_millis),
            status: status.into(),
        }
    }

    #[test]
    fn peer_csv_is_parsed_with_unfinished_queries() {
        let text = "query,median_s,min_s,max_s,rows,status\n\
                    q01,0.250,0.200,0.300,100,ran\n\
                    q02,,,,0,timeout\n\n";
        assert_eq!(
            parse_peer_csv(text).unwrap(),
            vec![
                external("q01", Some(250), "ran"),
                external("q02", None, "timeout")
            ]
        );
        assert_eq!(
            parse_peer_csv("query,median_s\nq03,\n").unwrap(),
            vec![external("q03", None, "unfinished")]
        );
        assert!(parse_peer_csv("").is_err());
        assert!(parse_peer_csv("name,seconds\nq01,1\n").is_err());
        assert!(parse_peer_csv("query,median_s\nq01,fast\n").is_err());
    }

    #[test]
    fn percentiles_and_labels() {
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), 3.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.9), 5.0);
        assert_eq!(percentile(&[], 0.9), 0.0);
        assert_eq!(column_label("DuckDB 1.5", false), "duckdb_1_5");
        assert_eq!(column_label("peer", true), "external");
    }
}
