//! The dataflows as a user looks at them: the list (name, type, status, tables, created, updated, last
//! refresh) and each one's run history. Read-only: nothing is created or changed by looking.

use crate::config::{Config, DataflowConfig, SinkKind, SinkUrl, SourceConfig, TableKind, TablePurpose};
use crate::sink::{StoredReject, stored_rejects, table_shape};
use crate::state::{RunRecord, RunStatus, StateError, StateStore, is_running};
use serde::Serialize;
use std::time::SystemTime;

/// One line of the dataflow list.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DataflowSummary {
    /// The dataflow's key in `connector.toml`.
    pub name: String,
    /// Its `display_name`, else its key.
    pub display_name: String,
    /// Source ─► sink: `s3 ─► sqlite`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `never run`, `running`, or how the last run ended.
    pub status: String,
    /// How many tables it writes.
    pub tables_count: usize,
    /// RFC 3339 times; absent before the first run.
    pub created: Option<String>,
    /// When its configuration last changed (RFC 3339).
    pub updated: Option<String>,
    /// When the last run that loaded data (succeeded or partial) ended.
    pub last_refresh: Option<String>,
    /// Where workers share the running run's objects: how they stand across the workers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work: Option<WorkSummary>,
}

/// A running run's objects across the workers that share them.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct WorkSummary {
    /// Waiting for a worker.
    pub queued: u64,
    /// Being loaded now.
    pub loading: u64,
    /// Ended.
    pub done: u64,
    /// Workers loading them now.
    pub workers: u64,
}

impl WorkSummary {
    /// `12 of 40 objects done, 3 loading on 2 workers`.
    pub fn describe(&self) -> String {
        let total = self.queued + self.loading + self.done;
        format!("{} of {total} objects done, {} loading on {} workers", self.done, self.loading, self.workers)
    }
}

/// A worker of the state store (see `sync::worker`), as the list of workers shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WorkerSummary {
    /// Its id: host, process id and start time.
    pub id: String,
    /// Its machine.
    pub host: String,
    /// Its process id there.
    pub pid: u32,
    /// When it started (RFC 3339).
    pub started: String,
    /// Its last heartbeat (RFC 3339).
    pub last_heartbeat: String,
    /// How long ago that was, by the state store's clock.
    pub heartbeat_age_seconds: f64,
    /// Whether its heartbeat is recent enough that its claims hold (within `[state] lease_timeout`).
    pub alive: bool,
    /// What it loads now: `Dataflow: key`.
    pub loading: Vec<String>,
}

/// A table of a dataflow, with what it is for.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TableSummary {
    /// The dataflow that writes it.
    pub dataflow: String,
    /// The table's name.
    pub table: String,
    /// What it is for.
    pub purpose: TablePurpose,
    /// Data or metadata.
    pub kind: TableKind,
    /// Absent until the first run creates the table.
    pub rows: Option<u64>,
    /// Its columns; `None` where the table is not there yet.
    pub columns: Option<usize>,
}

/// One run, as the history shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RunSummary {
    /// The run's number.
    pub run: i64,
    /// When it started (RFC 3339).
    pub started: String,
    /// When it ended (RFC 3339); `None` while it runs.
    pub ended: Option<String>,
    /// How long it took.
    pub duration_seconds: Option<f64>,
    /// How it ended (`succeeded`, `partial`, `failed`, `interrupted`, `rolled back`, `running`).
    pub status: String,
    /// Objects it took.
    pub objects: u64,
    /// Objects of those that did not load.
    pub failed_objects: u64,
    /// Rows written.
    pub rows_written: u64,
    /// Rows refused.
    pub rows_rejected: u64,
    /// Bytes read from the source.
    pub bytes: u64,
    /// Why it failed, or which objects failed.
    pub error: Option<String>,
}

fn time(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

fn state(config: &Config) -> Result<Option<StateStore>, StateError> {
    StateStore::open_read_only(&config.state_database())
}

/// Every dataflow of the configuration, in name order.
pub fn dataflows(config: &Config) -> Result<Vec<DataflowSummary>, StateError> {
    let mut state = state(config)?;
    let state_url = config.state_database();
    let mut summaries = Vec::new();
    for (name, dataflow) in &config.dataflows {
        let (record, runs) = match &mut state {
            Some(state) => (state.dataflow_record(name)?, state.runs(name)?),
            None => (None, Vec::new()),
        };
        let work = match (&mut state, runs.first()) {
            (Some(state), Some(run)) if run.status == RunStatus::Running => {
                let progress = state.work_progress(run.id)?;
                (progress.queued + progress.loading + progress.done > 0).then_some(WorkSummary {
                    queued: progress.queued,
                    loading: progress.loading,
                    done: progress.done,
                    workers: progress.workers,
                })
            }
            _ => None,
        };
        let status = match runs.first().map(|run| run.status) {
            _ if is_running(&state_url, name) => RunStatus::Running.as_str(),
            // The file lock of SQLite state goes with the process, before its lease expires.
            Some(RunStatus::Running) => RunStatus::Interrupted.as_str(),
            Some(status) => status.as_str(),
            None => "never run",
        }
        .to_string();
        let last_refresh = runs
            .iter()
            .find(|run| matches!(run.status, RunStatus::Succeeded | RunStatus::Partial))
            .and_then(|run| run.ended_at);
        let sink_url = config.sink_database(dataflow);
        let tables = config.dataflow_tables(name, dataflow);
        let tables_count =
            tables.iter().filter(|(scope, table)| table_shape(&sink_url, scope, table).is_some()).count();
        summaries.push(DataflowSummary {
            name: name.clone(),
            display_name: dataflow.display_name.clone().unwrap_or_else(|| name.clone()),
            kind: kind(dataflow, &sink_url),
            status,
            tables_count,
            created: record.as_ref().map(|r| time(r.created_at)),
            updated: record.as_ref().map(|r| time(r.updated_at)),
            last_refresh: last_refresh.map(time),
            work,
        });
    }
    Ok(summaries)
}

/// The workers of the state store (PostgreSQL state only; none with SQLite), newest heartbeat first.
pub fn workers(config: &Config) -> Result<Vec<WorkerSummary>, StateError> {
    let Some(mut state) = state(config)? else { return Ok(Vec::new()) };
    let lease = config.lease_timeout();
    Ok(state
        .workers()?
        .into_iter()
        .map(|worker| WorkerSummary {
            id: worker.id,
            host: worker.host,
            pid: worker.pid,
            started: time(worker.started_at),
            last_heartbeat: time(worker.heartbeat_at),
            heartbeat_age_seconds: worker.heartbeat_age.as_millis() as f64 / 1000.0,
            alive: worker.heartbeat_age < lease,
            loading: worker.loading.into_iter().map(|(dataflow, key)| format!("{dataflow}: {key}")).collect(),
        })
        .collect())
}

/// The tables of every dataflow, with their purpose, kind, rows and columns.
pub fn tables(config: &Config) -> Vec<TableSummary> {
    config
        .dataflows
        .iter()
        .flat_map(|(name, dataflow)| {
            let sink_url = config.sink_database(dataflow);
            config.dataflow_tables(name, dataflow).into_iter().map(move |(scope, table)| {
                let shape = table_shape(&sink_url, &scope, &table);
                TableSummary {
                    dataflow: name.clone(),
                    table,
                    purpose: dataflow.sink.purpose,
                    kind: dataflow.sink.table_kind,
                    rows: shape.map(|(rows, _)| rows),
                    columns: shape.map(|(_, columns)| columns),
                }
            })
        })
        .collect()
}

/// `local ─► sqlite`, `s3 ─► stripe products`.
fn kind(dataflow: &DataflowConfig, sink: &SinkUrl) -> String {
    let source = match dataflow.source {
        SourceConfig::Local(_) => "local",
        SourceConfig::S3(_) => "s3",
        SourceConfig::Stripe(_) => "stripe",
        SourceConfig::Custom(_) => "custom",
    };
    match (dataflow.sink.kind, &dataflow.sink.object) {
        (SinkKind::Stripe, Some(object)) => format!("{source} ─► stripe {object}"),
        (SinkKind::Custom, _) => {
            format!("{source} ─► custom {}", dataflow.sink.name.as_deref().unwrap_or_default())
        }
        _ => format!("{source} ─► {}", sink.kind()),
    }
}

/// One object of a run, as `sluice history --run` shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ObjectSummary {
    /// The object's key.
    pub key: String,
    /// How it stands in the ledger.
    pub status: String,
    /// Rows loaded from it.
    pub rows: u64,
    /// Rows of it refused.
    pub rejected: u64,
    /// Why it failed or is pending, where it did not load.
    pub error: Option<String>,
    /// The worker that loaded it, where workers shared the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

/// The objects whose outcome run `run_id` of `dataflow` recorded (an object a later run took again shows
/// under that run), in key order.
pub fn run_objects(config: &Config, dataflow: &str, run_id: i64) -> Result<Vec<ObjectSummary>, StateError> {
    let ledger = match state(config)? {
        Some(mut state) => state.ledger(dataflow)?,
        None => Vec::new(),
    };
    Ok(ledger
        .into_iter()
        .filter(|entry| entry.run_id == run_id)
        .map(|entry| ObjectSummary {
            key: entry.key,
            status: entry.status.as_str().to_string(),
            rows: entry.rows,
            rejected: entry.rejected,
            error: entry.error,
            worker: entry.worker,
        })
        .collect())
}

/// The runs of `dataflow`, newest first.
pub fn history(config: &Config, dataflow: &str) -> Result<Vec<RunSummary>, StateError> {
    let runs = match state(config)? {
        Some(mut state) => state.runs(dataflow)?,
        None => Vec::new(),
    };
    Ok(runs.iter().map(run_summary).collect())
}

/// A row a dataflow rejected, with the table it was bound for.
#[derive(Clone, Debug, Serialize)]
pub struct RejectSummary {
    /// The table the row was bound for.
    pub table: String,
    /// The row as the sink keeps it.
    #[serde(flatten)]
    pub reject: StoredReject,
}

/// The rows `name` rejected, by table, run, object and line: those of run `run` only, and those whose
/// reason holds `reason` (ignoring case) only, where given. Read from the sink, where they are kept
/// beside the rows loaded.
pub fn rejects(
    config: &Config,
    name: &str,
    run: Option<i64>,
    reason: Option<&str>,
) -> Result<Vec<RejectSummary>, String> {
    let dataflow = config.dataflow(name).map_err(|e| e.to_string())?;
    let sink_url = config.sink_database(dataflow);
    let reason = reason.map(str::to_lowercase);
    let mut summaries = Vec::new();
    for (scope, table) in config.dataflow_tables(name, dataflow) {
        let rejects = stored_rejects(&sink_url, &scope, &table, run)
            .map_err(|e| format!("dataflow `{name}`, table `{table}`: {e}"))?;
        summaries.extend(
            rejects
                .into_iter()
                .filter(|r| reason.as_ref().is_none_or(|reason| r.reason.to_lowercase().contains(reason)))
                .map(|reject| RejectSummary { table: table.clone(), reject }),
        );
    }
    Ok(summaries)
}

fn run_summary(run: &RunRecord) -> RunSummary {
    RunSummary {
        run: run.id,
        started: time(run.started_at),
        ended: run.ended_at.map(time),
        duration_seconds: run
            .ended_at
            .and_then(|end| end.duration_since(run.started_at).ok())
            .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
        status: run.status.as_str().to_string(),
        objects: run.counts.objects,
        failed_objects: run.counts.failed_objects,
        rows_written: run.counts.rows,
        rows_rejected: run.counts.rejected,
        bytes: run.counts.bytes,
        error: run.error.clone(),
    }
}
