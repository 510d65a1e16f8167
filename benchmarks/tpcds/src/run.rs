//! `floe-tpcds run`: the queries in rounds on a Floe cluster, timed, optionally validated
//! against reference answers and compared with single-process DataFusion in the same run.
//!
//! Each query runs `rounds` times over Flight SQL, exactly as a user's shell sends it; the time
//! is from sending the statement to the last result batch. The peer, when asked for, is a
//! `FloeSession` without a cluster: DataFusion planning and running the same statement over
//! the same Iceberg tables in this process. All of Floe's rounds run before the peer's, so the
//! process's peak memory after Floe's rounds is the embedded cluster's own.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use floe_client::remote::{Connection, StatementError};
use floe_core::FloeSession;
use indicatif::ProgressBar;

use crate::answers::{Answer, compare, compare_text};
use crate::error::{Result, TpcdsError};
use crate::queries::{orders_result, query_text};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Query names (`q01`..`q99`).
    pub queries: Vec<String>,
    /// Times each query runs; the median is reported.
    pub rounds: usize,
    /// `catalog.namespace` of the tables.
    pub namespace: String,
    /// Directory of reference answers (`qNN.csv`) to validate against.
    pub answers: Option<PathBuf>,
}

/// How a query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryStatus {
    /// Ran and matched everything it was checked against.
    Ok,
    /// Ran; nothing to check it against.
    Ran,
    /// Ran and differs from the reference answer or the peer.
    Wrong,
    /// Failed on Floe.
    Failed,
}

impl QueryStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Ran => "ran",
            Self::Wrong => "wrong",
            Self::Failed => "error",
        }
    }
}

/// One query's outcome.
#[derive(Debug, Clone)]
pub struct QueryRun {
    /// `qNN`.
    pub name: String,
    /// Floe's time per round.
    pub times: Vec<Duration>,
    /// Result rows (last round).
    pub rows: usize,
    /// Outcome.
    pub status: QueryStatus,
    /// Error messages and mismatches.
    pub notes: Vec<String>,
    /// The peer's time per round (empty without a peer).
    pub peer_times: Vec<Duration>,
    /// Floe's result as text rows, kept to compare with the peer.
    result: Option<Answer>,
}

impl QueryRun {
    /// Median of Floe's rounds.
    pub fn median(&self) -> Option<Duration> {
        median(&self.times)
    }

    /// One line for the log while the run goes on.
    fn line(&self, engine: &str) -> String {
        let (times, status) = if engine == "Floe" {
            (&self.times, self.status.as_str())
        } else {
            (
                &self.peer_times,
                if self.status == QueryStatus::Wrong {
                    "differs"
                } else {
                    ""
                },
            )
        };
        let median = median(times).map_or("-".to_string(), |m| format!("{:.3} s", m.as_secs_f64()));
        format!("{} on {engine}: {median} {status}", self.name)
    }

    /// Median of the peer's rounds.
    pub fn peer_median(&self) -> Option<Duration> {
        median(&self.peer_times)
    }
}

fn median(times: &[Duration]) -> Option<Duration> {
    let mut sorted = times.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2),
    }
}

/// All queries of a run.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// One entry per query, in the order run.
    pub queries: Vec<QueryRun>,
    /// Peak resident memory of this process after Floe's rounds (the embedded cluster's).
    pub peak_memory_bytes: Option<u64>,
}

/// Runs every query `options.rounds` times on `connection`, then (with `peer`) on the peer.
pub async fn run_queries(
    connection: &mut Connection,
    peer: Option<&FloeSession>,
    options: &RunOptions,
    progress: &ProgressBar,
) -> Result<RunReport> {
    let rounds = options.rounds.max(1);
    progress
        .set_length((options.queries.len() * rounds * (1 + usize::from(peer.is_some()))) as u64);
    connection
        .execute(&format!("USE {}", options.namespace))
        .await
        .map_err(|e| TpcdsError::Cluster(statement_error(e)))?;
    let mut report = RunReport::default();
    for name in &options.queries {
        let sql = query_text(name)?;
        progress.set_message(format!("{name} on Floe"));
        let mut run = QueryRun {
            name: name.clone(),
            times: Vec::new(),
            rows: 0,
            status: QueryStatus::Ran,
            notes: Vec::new(),
            peer_times: Vec::new(),
            result: None,
        };
        for _ in 0..rounds {
            let started = Instant::now();
            let outcome = connection.execute(sql).await;
            let elapsed = started.elapsed();
            progress.inc(1);
            match outcome {
                Ok(output) => {
                    run.times.push(elapsed);
                    run.rows = output.batches.iter().map(RecordBatch::num_rows).sum();
                    // Results are checked once; later rounds only time the query.
                    if run.times.len() == 1 {
                        run.result = Some(as_answer(&output.schema, &output.batches)?);
                        if let Some(dir) = &options.answers {
                            let path = dir.join(format!("{name}.csv"));
                            check_against(&mut run, sql, &path, &output.batches)?;
                        }
                    }
                }
                Err(err) => {
                    run.status = QueryStatus::Failed;
                    run.notes.push(statement_error(err));
                    progress.inc((rounds - run.times.len() - 1) as u64);
                    break;
                }
            }
        }
        progress.suspend(|| eprintln!("{}", run.line("Floe")));
        report.queries.push(run);
    }
    report.peak_memory_bytes = peak_resident_bytes();
    if let Some(peer) = peer {
        peer.execute_statement(&format!("USE {}", options.namespace))
            .await?;
        for run in &mut report.queries {
            let sql = query_text(&run.name)?;
            progress.set_message(format!("{} on single-process DataFusion", run.name));
            for _ in 0..rounds {
                let started = Instant::now();
                let outcome = peer.execute_statement(sql).await;
                let elapsed = started.elapsed();
                progress.inc(1);
                match outcome {
                    Ok(output) => {
                        run.peer_times.push(elapsed);
                        if run.peer_times.len() == 1 {
                            compare_with_peer(run, sql, &output.batches)?;
                        }
                    }
                    Err(err) => {
                        run.notes
                            .push(format!("single-process DataFusion failed: {err}"));
                        progress.inc((rounds - run.peer_times.len() - 1) as u64);
                        break;
                    }
                }
            }
            progress.suspend(|| eprintln!("{}", run.line("single-process DataFusion")));
        }
    }
    Ok(report)
}

fn statement_error(err: StatementError) -> String {
    match err {
        StatementError::Failed(message) => message,
        StatementError::Cancelled => "cancelled".to_string(),
    }
}

fn as_answer(schema: &arrow::datatypes::SchemaRef, batches: &[RecordBatch]) -> Result<Answer> {
    Ok(Answer {
        columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
        rows: floe_core::text_rows::rows_as_text(batches)?,
    })
}

fn check_against(
    run: &mut QueryRun,
    sql: &str,
    path: &Path,
    batches: &[RecordBatch],
) -> Result<()> {
    if !path.exists() {
        run.notes
            .push(format!("no reference answer {}", path.display()));
        return Ok(());
    }
    let answer = Answer::read(path)?;
    let mismatches = compare(&answer, batches, orders_result(sql))?;
    record(run, "reference answer", mismatches);
    Ok(())
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

fn record(run: &mut QueryRun, against: &str, mismatches: Vec<String>) {
    if mismatches.is_empty() {
        if run.status == QueryStatus::Ran {
            run.status = QueryStatus::Ok;
        }
        return;
    }
    run.status = QueryStatus::Wrong;
    run.notes
        .extend(mismatches.into_iter().map(|m| format!("vs {against}: {m}")));
}

/// Peak resident memory of this process (Linux `VmHWM`).
pub fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl RunReport {
    /// The per-query CSV: `query,median_s,min_s,max_s,rows,status`, and with a peer also
    /// `peer_median_s,ratio_to_peer`.
    pub fn csv(&self) -> String {
        let with_peer = self.queries.iter().any(|q| !q.peer_times.is_empty());
        let mut text = String::from("query,median_s,min_s,max_s,rows,status");
        if with_peer {
            text.push_str(",peer_median_s,ratio_to_peer");
        }
        text.push('\n');
        let seconds = |d: Option<Duration>| {
            d.map(|d| format!("{:.3}", d.as_secs_f64()))
                .unwrap_or_default()
        };
        for query in &self.queries {
            let _ = write!(
                text,
                "{},{},{},{},{},{}",
                query.name,
                seconds(query.median()),
                seconds(query.times.iter().min().copied()),
                seconds(query.times.iter().max().copied()),
                query.rows,
                query.status.as_str()
            );
            if with_peer {
                let ratio = match (query.median(), query.peer_median()) {
                    (Some(ours), Some(peer)) if peer.as_secs_f64() > 0.0 => {
                        format!("{:.2}", ours.as_secs_f64() / peer.as_secs_f64())
                    }
                    _ => String::new(),
                };
                let _ = write!(text, ",{},{ratio}", seconds(query.peer_median()));
            }
            text.push('\n');
        }
        text
    }

    /// Writes [`Self::csv`] to `path`.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.csv()).map_err(|source| TpcdsError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Queries that failed or differ.
    pub fn problems(&self) -> impl Iterator<Item = &QueryRun> {
        self.queries
            .iter()
            .filter(|q| matches!(q.status, QueryStatus::Wrong | QueryStatus::Failed))
    }

    /// The closing summary: totals and geometric means of the medians, counts by status,
    /// every problem's notes.
    pub fn summary(&self) -> String {
        let mut text = String::new();
        let count = |status| self.queries.iter().filter(|q| q.status == status).count();
        let _ = writeln!(
            text,
            "{} queries: {} ok, {} ran unchecked, {} wrong, {} failed",
            self.queries.len(),
            count(QueryStatus::Ok),
            count(QueryStatus::Ran),
            count(QueryStatus::Wrong),
            count(QueryStatus::Failed)
        );
        let ours: Vec<Duration> = self.queries.iter().filter_map(QueryRun::median).collect();
        let _ = writeln!(
            text,
            "Floe: total {:.2} s, geometric mean {:.3} s (medians of {} queries)",
            total(&ours),
            geometric_mean(&ours),
            ours.len()
        );
        // The ratio is over queries both engines ran, so neither total hides a failure.
        let both: Vec<(Duration, Duration)> = self
            .queries
            .iter()
            .filter_map(|q| Some((q.median()?, q.peer_median()?)))
            .collect();
        if !both.is_empty() {
            let (floe, peer): (Vec<_>, Vec<_>) = both.iter().copied().unzip();
            let _ = writeln!(
                text,
                "single-process DataFusion: total {:.2} s, geometric mean {:.3} s ({} queries both ran)",
                total(&peer),
                geometric_mean(&peer),
                peer.len()
            );
            let _ = writeln!(
                text,
                "Floe / single-process DataFusion: total {:.2}x, geometric mean {:.2}x",
                total(&floe) / total(&peer).max(f64::MIN_POSITIVE),
                geometric_mean(&floe) / geometric_mean(&peer).max(f64::MIN_POSITIVE)
            );
        }
        if let Some(bytes) = self.peak_memory_bytes {
            let _ = writeln!(
                text,
                "peak memory of this process during Floe's rounds: {} MiB",
                bytes / (1024 * 1024)
            );
        }
        for query in self.queries.iter().filter(|q| !q.notes.is_empty()) {
            let _ = writeln!(text, "{} ({}):", query.name, query.status.as_str());
            for note in &query.notes {
                let _ = writeln!(text, "  {note}");
            }
        }
        text
    }
}

fn total(times: &[Duration]) -> f64 {
    times.iter().map(Duration::as_secs_f64).sum()
}

/// Geometric mean in seconds (0 for no times).
pub fn geometric_mean(times: &[Duration]) -> f64 {
    if times.is_empty() {
        return 0.0;
    }
    // A query faster than a microsecond would send the logarithm to minus infinity.
    let logs: f64 = times.iter().map(|t| t.as_secs_f64().max(1e-6).ln()).sum();
    (logs / times.len() as f64).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_geometric_means() {
        let ms = Duration::from_millis;
        assert_eq!(median(&[ms(3), ms(1), ms(2)]), Some(ms(2)));
        assert_eq!(median(&[ms(4), ms(2)]), Some(ms(3)));
        assert_eq!(median(&[]), None);
        let mean = geometric_mean(&[ms(100), ms(1000)]);
        assert!((mean - 0.316_227).abs() < 1e-5, "{mean}");
    }

    #[test]
    fn csv_has_one_row_per_query() {
        let run = QueryRun {
            name: "q01".into(),
            times: vec![Duration::from_millis(1500), Duration::from_millis(500)],
            rows: 100,
            status: QueryStatus::Ok,
            notes: Vec::new(),
            peer_times: vec![Duration::from_millis(500)],
            result: None,
        };
        let report = RunReport {
            queries: vec![run],
            peak_memory_bytes: None,
        };
        assert_eq!(
            report.csv(),
            "query,median_s,min_s,max_s,rows,status,peer_median_s,ratio_to_peer\n\
             q01,1.000,0.500,1.500,100,ok,0.500,2.00\n"
        );
    }
}
