//! `sluice dataflows`, `sluice history` and `sluice rejects`: the dataflow list, a dataflow's runs and the
//! rows it rejected, as text or JSON.

use super::{Failure, load_dataflows, print_table};
use sluice::overview;
use std::path::Path;

pub fn list(config_path: Option<&Path>, json: bool, tables: bool, workers: bool) -> Result<(), Failure> {
    let config = load_dataflows(config_path)?;
    if tables {
        return list_tables(&config, json);
    }
    if workers {
        return list_workers(&config, json);
    }
    let dataflows = overview::dataflows(&config).map_err(|e| Failure::Input(e.to_string()))?;
    if json {
        return out!("{}", serde_json::to_string_pretty(&dataflows).expect("summaries serialize"));
    }
    let dash = || "—".to_string();
    print_table(
        &["NAME", "TYPE", "STATUS", "TABLES", "CREATED", "UPDATED", "LAST REFRESH"],
        dataflows
            .into_iter()
            .map(|d| {
                vec![
                    d.name,
                    d.kind,
                    match d.work {
                        Some(work) => format!("{} ({})", d.status, work.describe()),
                        None => d.status,
                    },
                    d.tables_count.to_string(),
                    d.created.unwrap_or_else(dash),
                    d.updated.unwrap_or_else(dash),
                    d.last_refresh.unwrap_or_else(dash),
                ]
            })
            .collect(),
    )
}

/// `--workers`: the workers of the state store, with what each loads.
fn list_workers(config: &sluice::config::Config, json: bool) -> Result<(), Failure> {
    let workers = overview::workers(config).map_err(|e| Failure::Input(e.to_string()))?;
    if json {
        return out!("{}", serde_json::to_string_pretty(&workers).expect("workers serialize"));
    }
    if workers.is_empty() {
        return out!(
            "no workers: daemons share runs as workers only with a PostgreSQL state store ([state] url)"
        );
    }
    print_table(
        &["WORKER", "HOST", "PID", "LAST HEARTBEAT", "LOADING"],
        workers
            .into_iter()
            .map(|w| {
                let heartbeat = if w.alive {
                    format!("{:.0}s ago", w.heartbeat_age_seconds)
                } else {
                    format!("{:.0}s ago (gone)", w.heartbeat_age_seconds)
                };
                let loading = if w.loading.is_empty() { "—".to_string() } else { w.loading.join(", ") };
                vec![w.id, w.host, w.pid.to_string(), heartbeat, loading]
            })
            .collect(),
    )
}

/// `--tables`: each dataflow's tables with their purpose and kind.
fn list_tables(config: &sluice::config::Config, json: bool) -> Result<(), Failure> {
    let tables = overview::tables(config);
    if json {
        return out!("{}", serde_json::to_string_pretty(&tables).expect("tables serialize"));
    }
    print_table(
        &["DATAFLOW", "TABLE", "PURPOSE", "KIND", "ROWS", "COLUMNS"],
        tables
            .into_iter()
            .map(|t| {
                vec![
                    t.dataflow,
                    t.table,
                    t.purpose.as_str().to_string(),
                    t.kind.as_str().to_string(),
                    t.rows.map_or("—".to_string(), |r| r.to_string()),
                    t.columns.map_or("—".to_string(), |c| c.to_string()),
                ]
            })
            .collect(),
    )
}

pub fn history(config_path: Option<&Path>, name: &str, json: bool) -> Result<(), Failure> {
    let config = load_dataflows(config_path)?;
    config.dataflow(name)?;
    let runs = overview::history(&config, name).map_err(|e| Failure::Input(e.to_string()))?;
    if json {
        return out!("{}", serde_json::to_string_pretty(&runs).expect("runs serialize"));
    }
    if runs.is_empty() {
        return out!("{name} has not run yet");
    }
    print_table(
        &["RUN", "STARTED", "DURATION", "STATUS", "OBJECTS", "ROWS", "REJECTED", "ERROR"],
        runs.into_iter()
            .map(|r| {
                vec![
                    r.run.to_string(),
                    r.started,
                    r.duration_seconds.map_or("—".to_string(), |s| format!("{s:.2} s")),
                    r.status,
                    if r.failed_objects > 0 {
                        format!("{} ({} failed)", r.objects, r.failed_objects)
                    } else {
                        r.objects.to_string()
                    },
                    r.rows_written.to_string(),
                    r.rows_rejected.to_string(),
                    r.error.unwrap_or_default(),
                ]
            })
            .collect(),
    )
}

/// `history --run N`: the objects of one run, each with its outcome.
pub fn run_objects(config_path: Option<&Path>, name: &str, run: i64, json: bool) -> Result<(), Failure> {
    let config = load_dataflows(config_path)?;
    config.dataflow(name)?;
    let objects = overview::run_objects(&config, name, run).map_err(|e| Failure::Input(e.to_string()))?;
    if json {
        return out!("{}", serde_json::to_string_pretty(&objects).expect("objects serialize"));
    }
    if objects.is_empty() {
        return out!("{name}: run {run} recorded no objects");
    }
    print_table(
        &["OBJECT", "STATUS", "ROWS", "REJECTED", "ERROR"],
        objects
            .into_iter()
            .map(|o| {
                vec![o.key, o.status, o.rows.to_string(), o.rejected.to_string(), o.error.unwrap_or_default()]
            })
            .collect(),
    )
}

/// `rejects`: the rows a dataflow rejected, with their line, reason and raw text.
pub fn rejects(
    config_path: Option<&Path>,
    name: &str,
    run: Option<i64>,
    reason: Option<&str>,
    json: bool,
) -> Result<(), Failure> {
    let config = load_dataflows(config_path)?;
    config.dataflow(name)?;
    let rejects = overview::rejects(&config, name, run, reason).map_err(Failure::Input)?;
    if json {
        return out!("{}", serde_json::to_string_pretty(&rejects).expect("rejects serialize"));
    }
    if rejects.is_empty() {
        let run = run.map_or(String::new(), |run| format!(" in run {run}"));
        let reason = reason.map_or(String::new(), |reason| format!(" for a reason holding `{reason}`"));
        return out!("{name} rejected no rows{run}{reason}");
    }
    print_table(
        &["RUN", "TABLE", "OBJECT", "LINE", "REASON", "RAW"],
        rejects
            .into_iter()
            .map(|r| {
                vec![
                    r.reject.run_id.to_string(),
                    r.table,
                    r.reject.object,
                    r.reject.line.to_string(),
                    r.reject.reason,
                    one_line(&r.reject.raw, RAW_SHOWN),
                ]
            })
            .collect(),
    )
}

/// How many characters of a rejected row's raw text the table shows (`--json` has all of it).
const RAW_SHOWN: usize = 60;

/// `text` on one line of at most `limit` characters: line ends, tabs and other control characters
/// escaped, the rest cut with `…`.
fn one_line(text: &str, limit: usize) -> String {
    let mut escaped = String::new();
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    match escaped.char_indices().nth(limit) {
        Some((cut, _)) => format!("{}…", &escaped[..cut]),
        None => escaped,
    }
}
