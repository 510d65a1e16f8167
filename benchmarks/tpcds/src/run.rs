//! `floe-tpcds run`: the queries in rounds on a Floe cluster, timed, optionally validated
//! against reference answers, profiled, and compared with peers: single-process DataFusion in
//! the same run, and an external engine whose per-query CSV is merged into the report.
//!
//! Each query runs `rounds` times over Flight SQL, exactly as a user's shell sends it; the time
//! is from sending the statement to the last result batch. A query past its time limit is
//! cancelled on the cluster and not run again. The single-process peer, when asked for, is a
//! `FloeSession` without a cluster: DataFusion planning and running the same statement over
//! the same Iceberg tables in this process. All of Floe's rounds run before the peer's, so the
//! process's peak memory after Floe's rounds is the embedded cluster's own. The peers, and
//! the comparison of Floe's times with theirs, are [`peer`]'s.

// `peer` is a child of this module (it reads the report's private parts), kept in its own file
// beside this one.
#[path = "peer.rs"]
pub mod peer;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use floe_client::remote::{Connection, StatementError};
use floe_core::FloeSession;
use indicatif::ProgressBar;

use self::peer::{column_label, ratio};
use crate::answers::{Answer, compare};
use crate::error::{Result, TpcdsError};
use crate::queries::{orders_result, query_text};

/// Column of an `EXPLAIN` result that holds the plan text (the other is `plan_type`).
const EXPLAIN_PLAN_COLUMN: &str = "plan";

/// Times below this count as this in ratios and logarithms, which would otherwise divide by
/// zero or go to minus infinity.
const MIN_SECONDS: f64 = 1e-6;

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

/// How each query runs beyond [`RunOptions`]; kept apart so that callers building
/// `RunOptions` field by field need not name these.
#[derive(Debug, Clone, Default)]
pub struct QuerySettings {
    /// Longest one execution may take before it is cancelled (none: no limit).
    pub timeout: Option<Duration>,
    /// Directory for each query's `EXPLAIN ANALYZE` (`qNN.txt`), run once after its rounds.
    pub profile: Option<PathBuf>,
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
    /// Did not finish on Floe within the time limit.
    TimedOut,
}

impl QueryStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Ran => "ran",
            Self::Wrong => "wrong",
            Self::Failed => "error",
            Self::TimedOut => "timeout",
        }
    }
}

/// One query's outcome.
#[derive(Debug, Clone)]
pub struct QueryRun {
    /// `qNN`.
    pub name: String,
    /// Floe's time per round (none for a query that timed out).
    pub times: Vec<Duration>,
    /// Result rows (last round).
    pub rows: usize,
    /// Outcome.
    pub status: QueryStatus,
    /// Error messages and mismatches.
    pub notes: Vec<String>,
    /// The single-process peer's time per round (empty without that peer).
    pub peer_times: Vec<Duration>,
    /// The external peer's median (none: it did not run or did not finish the query).
    pub external_median: Option<Duration>,
    /// The external peer's status for the query (none: it did not report the query).
    pub external_status: Option<String>,
    /// Floe's result as text rows, kept to compare with the peer.
    result: Option<Answer>,
}

impl QueryRun {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            times: Vec::new(),
            rows: 0,
            status: QueryStatus::Ran,
            notes: Vec::new(),
            peer_times: Vec::new(),
            external_median: None,
            external_status: None,
            result: None,
        }
    }

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

    /// Median of the single-process peer's rounds.
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
    /// Name of the external peer whose results were merged (none: no external peer ran).
    pub external_peer: Option<String>,
}

/// Runs every query `options.rounds` times on `connection`, then (with `peer`) on the peer.
pub async fn run_queries(
    connection: &mut Connection,
    peer: Option<&FloeSession>,
    options: &RunOptions,
    progress: &ProgressBar,
) -> Result<RunReport> {
    run_queries_with(
        connection,
        peer,
        options,
        &QuerySettings::default(),
        progress,
    )
    .await
}

/// [`run_queries`] with a time limit per execution (on both engines) and profiling.
pub async fn run_queries_with(
    connection: &mut Connection,
    peer: Option<&FloeSession>,
    options: &RunOptions,
    settings: &QuerySettings,
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
        let mut run = run_on_floe(connection, name, options, settings.timeout, progress).await?;
        // A query that never finished would only fail or time out again.
        if let Some(dir) = settings
            .profile
            .as_deref()
            .filter(|_| !run.times.is_empty())
        {
            progress.set_message(format!("{name}: EXPLAIN ANALYZE"));
            profile(connection, &mut run, dir, settings.timeout).await;
        }
        progress.suspend(|| eprintln!("{}", run.line("Floe")));
        report.queries.push(run);
    }
    report.peak_memory_bytes = peak_resident_bytes();
    if let Some(session) = peer {
        session
            .execute_statement(&format!("USE {}", options.namespace))
            .await?;
        for run in &mut report.queries {
            peer::run_on_peer(session, run, rounds, settings.timeout, progress).await?;
        }
    }
    Ok(report)
}

/// One query's rounds on Floe; its result is checked after the first round.
async fn run_on_floe(
    connection: &mut Connection,
    name: &str,
    options: &RunOptions,
    timeout: Option<Duration>,
    progress: &ProgressBar,
) -> Result<QueryRun> {
    let sql = query_text(name)?;
    let rounds = options.rounds.max(1);
    progress.set_message(format!("{name} on Floe"));
    let mut run = QueryRun::new(name);
    for round in 0..rounds {
        let started = Instant::now();
        let outcome = connection.execute_with_timeout(sql, timeout).await;
        let elapsed = started.elapsed();
        progress.inc(1);
        let output = match outcome {
            Ok(output) => output,
            Err(err) => {
                give_up(&mut run, err);
                progress.inc((rounds - round - 1) as u64);
                break;
            }
        };
        run.times.push(elapsed);
        run.rows = output.batches.iter().map(RecordBatch::num_rows).sum();
        // Results are checked once; later rounds only time the query.
        if round == 0 {
            run.result = Some(as_answer(&output.schema, &output.batches)?);
            if let Some(dir) = &options.answers {
                let path = dir.join(format!("{name}.csv"));
                check_against(&mut run, sql, &path, &output.batches)?;
            }
        }
    }
    Ok(run)
}

/// Records why a query stopped. A query that timed out keeps no time: the rounds it did
/// finish would make it look faster than it is.
fn give_up(run: &mut QueryRun, err: StatementError) {
    if matches!(err, StatementError::TimedOut(_)) {
        run.status = QueryStatus::TimedOut;
        run.times.clear();
    } else {
        run.status = QueryStatus::Failed;
    }
    run.notes.push(statement_error(err));
}

/// Runs `EXPLAIN ANALYZE` of the query once and writes its plan to `dir/qNN.txt`. A failure is
/// a note on the query, not a failure of it.
async fn profile(
    connection: &mut Connection,
    run: &mut QueryRun,
    dir: &Path,
    timeout: Option<Duration>,
) {
    if let Err(message) = write_profile(connection, &run.name, dir, timeout).await {
        run.notes.push(format!("profile: {message}"));
    }
}

async fn write_profile(
    connection: &mut Connection,
    name: &str,
    dir: &Path,
    timeout: Option<Duration>,
) -> Result<(), String> {
    let sql = query_text(name).map_err(|e| e.to_string())?;
    let output = connection
        .execute_with_timeout(&format!("EXPLAIN ANALYZE {sql}"), timeout)
        .await
        .map_err(statement_error)?;
    let text = plan_text(&output.batches).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(format!("{name}.txt"));
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The plan column of an `EXPLAIN` result, a line per row.
fn plan_text(batches: &[RecordBatch]) -> Result<String, ArrowError> {
    let mut lines = Vec::new();
    for batch in batches {
        let Some(plan) = batch.column_by_name(EXPLAIN_PLAN_COLUMN) else {
            return Err(ArrowError::SchemaError(format!(
                "EXPLAIN result has no `{EXPLAIN_PLAN_COLUMN}` column"
            )));
        };
        let formatter = ArrayFormatter::try_new(plan.as_ref(), &FormatOptions::default())?;
        lines.extend((0..batch.num_rows()).map(|row| formatter.value(row).to_string()));
    }
    Ok(lines.join("\n") + "\n")
}

fn statement_error(err: StatementError) -> String {
    match err {
        StatementError::Failed(message) => message,
        StatementError::Cancelled => "cancelled".to_string(),
        StatementError::TimedOut(limit) => {
            format!("timed out after {:.1} s (cancelled)", limit.as_secs_f64())
        }
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
    /// The per-query CSV: `query,median_s,min_s,max_s,rows,status`; with the single-process
    /// peer also `peer_median_s,ratio_to_peer`; with an external peer also
    /// `<peer>_median_s,ratio_to_<peer>`.
    pub fn csv(&self) -> String {
        let with_peer = self.queries.iter().any(|q| !q.peer_times.is_empty());
        let external = self
            .external_peer
            .as_deref()
            .map(|name| column_label(name, with_peer));
        let mut text = String::from("query,median_s,min_s,max_s,rows,status");
        if with_peer {
            text.push_str(",peer_median_s,ratio_to_peer");
        }
        if let Some(label) = &external {
            let _ = write!(text, ",{label}_median_s,ratio_to_{label}");
        }
        text.push('\n');
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
            let mut peers = Vec::new();
            if with_peer {
                peers.push(query.peer_median());
            }
            if external.is_some() {
                peers.push(query.external_median);
            }
            for theirs in peers {
                let ratio_cell = match (query.median(), theirs) {
                    (Some(ours), Some(theirs)) => format!("{:.2}", ratio(ours, theirs)),
                    _ => String::new(),
                };
                let _ = write!(text, ",{},{ratio_cell}", seconds(theirs));
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

    /// Queries that failed, differ or did not finish in time.
    pub fn problems(&self) -> impl Iterator<Item = &QueryRun> {
        self.queries.iter().filter(|q| {
            matches!(
                q.status,
                QueryStatus::Wrong | QueryStatus::Failed | QueryStatus::TimedOut
            )
        })
    }

    /// The closing summary: totals and geometric means of the medians, counts by status, the
    /// comparison with each peer, every problem's notes.
    pub fn summary(&self) -> String {
        let mut text = String::new();
        let count = |status| self.queries.iter().filter(|q| q.status == status).count();
        let _ = writeln!(
            text,
            "{} queries: {} ok, {} ran unchecked, {} wrong, {} failed, {} timed out",
            self.queries.len(),
            count(QueryStatus::Ok),
            count(QueryStatus::Ran),
            count(QueryStatus::Wrong),
            count(QueryStatus::Failed),
            count(QueryStatus::TimedOut)
        );
        let ours: Vec<Duration> = self.queries.iter().filter_map(QueryRun::median).collect();
        let _ = writeln!(
            text,
            "Floe: total {:.2} s, geometric mean {:.3} s (medians of {} queries)",
            total(&ours),
            geometric_mean(&ours),
            ours.len()
        );
        self.write_peer_comparisons(&mut text);
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

/// Seconds with three decimals, or an empty CSV cell.
fn seconds(duration: Option<Duration>) -> String {
    duration
        .map(|d| format!("{:.3}", d.as_secs_f64()))
        .unwrap_or_default()
}

fn total(times: &[Duration]) -> f64 {
    times.iter().map(Duration::as_secs_f64).sum()
}

/// Geometric mean in seconds (0 for no times).
pub fn geometric_mean(times: &[Duration]) -> f64 {
    if times.is_empty() {
        return 0.0;
    }
    let logs: f64 = times
        .iter()
        .map(|t| t.as_secs_f64().max(MIN_SECONDS).ln())
        .sum();
    (logs / times.len() as f64).exp()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// A query that ran in `times`, 100 rows, matched its answer.
    fn ran(name: &str, times: &[u64]) -> QueryRun {
        QueryRun {
            times: times.iter().copied().map(ms).collect(),
            rows: 100,
            status: QueryStatus::Ok,
            ..QueryRun::new(name)
        }
    }

    fn external(query: &str, median: Option<Duration>, status: &str) -> peer::ExternalResult {
        peer::ExternalResult {
            query: query.into(),
            median,
            status: status.into(),
        }
    }

    #[test]
    fn medians_and_geometric_means() {
        assert_eq!(median(&[ms(3), ms(1), ms(2)]), Some(ms(2)));
        assert_eq!(median(&[ms(4), ms(2)]), Some(ms(3)));
        assert_eq!(median(&[]), None);
        let mean = geometric_mean(&[ms(100), ms(1000)]);
        assert!((mean - 0.316_227).abs() < 1e-5, "{mean}");
    }

    #[test]
    fn csv_has_one_row_per_query() {
        let mut run = ran("q01", &[1500, 500]);
        run.peer_times = vec![ms(500)];
        let report = RunReport {
            queries: vec![run],
            ..RunReport::default()
        };
        assert_eq!(
            report.csv(),
            "query,median_s,min_s,max_s,rows,status,peer_median_s,ratio_to_peer\n\
             q01,1.000,0.500,1.500,100,ok,0.500,2.00\n"
        );
    }

    #[test]
    fn csv_and_summary_compare_with_an_external_peer() {
        let mut timed_out = QueryRun::new("q03");
        timed_out.status = QueryStatus::TimedOut;
        let mut report = RunReport {
            queries: vec![ran("q01", &[1500]), ran("q02", &[100]), timed_out],
            ..RunReport::default()
        };
        report.set_external(
            "DuckDB 1.5",
            &[
                external("q01", Some(ms(250)), "ran"),
                external("q02", None, "timeout"),
                external("q03", Some(ms(100)), "ran"),
            ],
        );
        assert_eq!(
            report.csv(),
            "query,median_s,min_s,max_s,rows,status,duckdb_1_5_median_s,ratio_to_duckdb_1_5\n\
             q01,1.500,1.500,1.500,100,ok,0.250,6.00\n\
             q02,0.100,0.100,0.100,100,ok,,\n\
             q03,,,,0,timeout,0.100,\n"
        );
        let summary = report.summary();
        for expected in [
            "3 queries: 2 ok, 0 ran unchecked, 0 wrong, 0 failed, 1 timed out",
            "DuckDB 1.5: total 0.25 s, geometric mean 0.250 s (1 queries both finished)",
            "Floe / DuckDB 1.5: total 6.00x, geometric mean 6.00x",
            "median 6.00x, p90 6.00x; 1 queries over 5x",
            "DuckDB 1.5 did not finish: q02 (timeout)",
        ] {
            assert!(summary.contains(expected), "{expected}\n{summary}");
        }
        assert_eq!(report.problems().count(), 1);
    }
}
