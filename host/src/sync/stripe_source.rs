//! A run of a dataflow whose source is Stripe's API: each configured object (`customers`, `charges`, ...)
//! is listed page by page into a table of its own, merged on `id`.
//!
//! The first run lists every object. Later runs list those created since the newest one seen (less the
//! lookback), and take what changed since the last run from the events API: the newest version of each
//! object an event carries is merged over its row, so an update to an old customer reaches the table.
//! Each page commits with its marker; a run killed part-way keeps the pages it finished, and the next run,
//! listing from the same cursor, merges the rest in, each object once.

use super::load::ObjectReport;
use super::runner::{RunReport, Runner};
use super::stores::{lock, open_state, open_stripe_table, state_error};
use super::{Progress, SyncError};
use crate::config::{DataflowConfig, StripeSourceConfig};
use crate::object::ObjectMeta;
use crate::sink::{self, SinkError, TableSink};
use crate::state::{Lease, ObjectStatus, RunStatus, StateStore};
use crate::stripe::{StripeClient, StripeError, objects_batch};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::runtime::Handle;

/// Objects per list call: Stripe's most.
const PAGE_LIMIT: &str = "100";

/// Objects that changed, newest version each, by API path; and when the newest event was.
type Changed = (HashMap<String, Vec<Json>>, Option<SystemTime>);

/// One table of the run.
struct Table<'r> {
    /// The Stripe object's API path.
    object: &'r str,
    /// The scope its sink and cursor are kept under (`Billing/customers`).
    scope: String,
    name: String,
}

impl Runner<'_> {
    /// Runs a dataflow whose source is Stripe: every table of `source.tables`, in order.
    pub(super) fn run_stripe(
        &self,
        name: &str,
        dataflow: &DataflowConfig,
        source: &StripeSourceConfig,
        progress: &dyn Progress,
    ) -> Result<RunReport, SyncError> {
        let started = Instant::now();
        let lock = lock(self.config(), name)?;
        let mut state = open_state(self.config(), name, lock.lease())?;
        let mut report = RunReport::begin(&mut state, name, dataflow).map_err(state_error(name))?;
        let run_id = report.run_id;
        let client = StripeClient::new(source.client_settings())
            .map_err(|message| SyncError::Plan(format!("dataflow `{name}`: {message}")))?;
        let import = StripeImport {
            runner: self,
            name,
            dataflow,
            source,
            client: &client,
            run_id,
            lease: lock.lease(),
            progress,
        };
        let outcome = import.run(&mut state, &mut report);
        report.end(&mut state, outcome, started);
        Ok(report)
    }
}

struct StripeImport<'r> {
    runner: &'r Runner<'r>,
    name: &'r str,
    dataflow: &'r DataflowConfig,
    source: &'r StripeSourceConfig,
    client: &'r StripeClient,
    run_id: i64,
    lease: &'r Lease,
    progress: &'r dyn Progress,
}

impl StripeImport<'_> {
    fn run(&self, state: &mut StateStore, report: &mut RunReport) -> Result<(), String> {
        let config = self.runner.config();
        let tables: Vec<Table<'_>> = config
            .dataflow_tables(self.name, self.dataflow)
            .into_iter()
            .zip(self.source.tables.iter())
            .map(|((scope, name), object)| Table { object, scope, name })
            .collect();

        // What changed since the last run, from the events, before the listings: an object changed while
        // the run lists is then caught by the next run's events, never lost between the two.
        let events_scope = format!("{}/@events", self.name);
        let events_cursor = state.cursor(&events_scope).map_err(|e| e.to_string())?;
        let (changed, newest_event) = match events_cursor {
            Some(cursor) => self.changed_since(cursor)?,
            None => {
                // The first run lists everything; the events that matter are those from its start on.
                let started = SystemTime::now();
                state
                    .advance_cursor(&events_scope, started, self.run_id, started)
                    .map_err(|e| e.to_string())?;
                (HashMap::new(), None)
            }
        };

        for (done, table) in tables.iter().enumerate() {
            if self.runner.stop().draining() {
                report.conclude("tables");
                report.interrupted(tables.len() - done, "tables");
                return Ok(());
            }
            if let Some(lost) = self.lease.lost() {
                report.conclude("tables");
                report.lost_lease(&lost, tables.len() - done, "tables");
                return Ok(());
            }
            let outcome = self.import_table(state, table, changed.get(table.object).map(Vec::as_slice));
            let failed = outcome.status != ObjectStatus::Loaded;
            report.counts.objects += 1;
            if failed {
                report.counts.failed_objects += 1;
            } else {
                report.counts.rows += outcome.rows;
            }
            report.counts.bytes += outcome.bytes;
            report.objects.push(outcome);
            if let Some(refused) = self.client.key_refused() {
                report.status = RunStatus::Failed;
                report.error = Some(format!("{refused}; the run stopped there"));
                return Ok(());
            }
        }

        // Past the events read, once every table took its changes; where one failed, the next run reads
        // them again (merging on `id` makes that harmless).
        let all_loaded = report.objects.iter().all(|o| o.status == ObjectStatus::Loaded);
        if let (Some(newest), true) = (newest_event, all_loaded) {
            state
                .advance_cursor(&events_scope, newest, self.run_id, SystemTime::now())
                .map_err(|e| e.to_string())?;
        }
        report.conclude("tables");
        Ok(())
    }

    /// The newest version of every object an event since `cursor` (less the lookback) carries, by the
    /// object's API path, and the newest event's time.
    fn changed_since(&self, cursor: SystemTime) -> Result<Changed, String> {
        let since = unix(cursor).saturating_sub(self.source.lookback().as_secs() as i64);
        let mut events = Vec::new();
        let filters = [("created[gt]".to_string(), since.to_string())];
        self.list_pages("events", &filters, |page| {
            events.extend_from_slice(page);
            Ok(())
        })?;
        let mut changed: HashMap<String, Vec<Json>> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        // Newest first, so the first version of an object met is its newest.
        for event in &events {
            let object = &event["data"]["object"];
            let (Some(id), Some(kind)) = (object["id"].as_str(), object["object"].as_str()) else { continue };
            if seen.insert(id.to_string()) {
                changed.entry(api_path(kind)).or_default().push(object.clone());
            }
        }
        let newest = events.iter().filter_map(|e| e["created"].as_i64()).max().map(from_unix);
        Ok((changed, newest))
    }

    fn list_pages(
        &self,
        path: &str,
        filters: &[(String, String)],
        page: impl FnMut(&[Json]) -> Result<(), String>,
    ) -> Result<u64, String> {
        list_pages(self.runner.runtime(), self.client, path, filters, page)
    }

    /// Lists one table's new objects into it, page by page, then merges its changed ones.
    fn import_table(
        &self,
        state: &mut StateStore,
        table: &Table<'_>,
        changed: Option<&[Json]>,
    ) -> ObjectReport {
        let started = Instant::now();
        let mut report = ObjectReport {
            key: table.object.to_string(),
            status: ObjectStatus::Pending,
            rows: 0,
            rejected: 0,
            bytes: 0,
            error: None,
            elapsed: Duration::ZERO,
        };
        let result = self.load_table(state, table, changed, &mut report);
        report.elapsed = started.elapsed();
        match result {
            Ok(()) => report.status = ObjectStatus::Loaded,
            Err(error) => report.error = Some(format!("table `{}` ({}): {error}", table.name, table.object)),
        }
        report
    }

    fn load_table(
        &self,
        state: &mut StateStore,
        table: &Table<'_>,
        changed: Option<&[Json]>,
        report: &mut ObjectReport,
    ) -> Result<(), String> {
        let config = self.runner.config();
        let mut sink =
            open_stripe_table(config, self.name, self.dataflow, &table.scope, table.name.clone(), self.lease)
                .map_err(|e| e.to_string())?;
        let cursor = state.cursor(&table.scope).map_err(|e| e.to_string())?;
        let filters = created_since(cursor, self.source.lookback());
        let mut newest = cursor.map(unix);
        let mut pages = 0u64;
        let progress = ObjectMeta {
            key: table.object.to_string(),
            size: 0,
            etag: String::new(),
            last_modified: SystemTime::now(),
        };
        self.progress.object_started(&progress);
        self.list_pages(table.object, &filters, |page| {
            if self.runner.stop().aborting() {
                // The pages before are committed, each with its marker; the next run merges the rest.
                return Err(super::INTERRUPTED.to_string());
            }
            if let Some(lost) = self.lease.lost() {
                return Err(lost);
            }
            pages += 1;
            newest = newest.max(page.iter().filter_map(|o| o["created"].as_i64()).max());
            let key = format!("{}/run-{}/page-{pages:05}", table.object, self.run_id);
            self.write(sink.as_mut(), &key, page, (pages - 1) * 100 + 1, report)
                .map_err(|e| e.to_string())?;
            self.progress.object_progress(&progress, report.bytes, report.rows);
            Ok(())
        })?;
        if let Some(changed) = changed.filter(|c| !c.is_empty()) {
            let key = format!("{}/run-{}/events", table.object, self.run_id);
            self.write(sink.as_mut(), &key, changed, 1, report).map_err(|e| e.to_string())?;
        }
        sink.finish_run().map_err(|e| e.to_string())?;
        if let Some(newest) = newest {
            state
                .advance_cursor(&table.scope, from_unix(newest), self.run_id, SystemTime::now())
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Merges `objects` into the table as one committed object of the sink, called `key`.
    fn write(
        &self,
        sink: &mut dyn TableSink,
        key: &str,
        objects: &[Json],
        first_line: u64,
        report: &mut ObjectReport,
    ) -> Result<(), SinkError> {
        if objects.is_empty() {
            return Ok(());
        }
        let batch = objects_batch(objects, first_line);
        let size = objects.iter().map(|o| o.to_string().len() as u64).sum();
        let first = objects[0]["id"].as_str().unwrap_or_default();
        let last = objects[objects.len() - 1]["id"].as_str().unwrap_or_default();
        let meta = ObjectMeta {
            key: key.to_string(),
            size,
            etag: format!("{first}..{last}"),
            last_modified: SystemTime::now(),
        };
        let mut writer = sink.begin_object(&meta, self.run_id)?;
        writer.write(&batch)?;
        let committed = writer.commit()?;
        report.rows += committed.rows;
        report.rejected += committed.rejected;
        report.bytes += size;
        Ok(())
    }
}

/// Lists `path` to its end, newest first, handing each page to `page` as it comes (so a table of any size
/// streams through); returns how many objects there were.
fn list_pages(
    runtime: &Handle,
    client: &StripeClient,
    path: &str,
    filters: &[(String, String)],
    mut page: impl FnMut(&[Json]) -> Result<(), String>,
) -> Result<u64, String> {
    let mut listed = 0;
    let mut after: Option<String> = None;
    loop {
        let mut query: Vec<(String, String)> = filters.to_vec();
        query.push(("limit".into(), PAGE_LIMIT.into()));
        if let Some(id) = &after {
            query.push(("starting_after".into(), id.clone()));
        }
        let answer = runtime.block_on(client.get(path, &query)).map_err(|e| describe(path, &e))?;
        let data = answer.body["data"].as_array().map(Vec::as_slice).unwrap_or_default();
        page(data)?;
        listed += data.len() as u64;
        after = data.last().and_then(|o| o["id"].as_str()).map(str::to_string);
        if !answer.body["has_more"].as_bool().unwrap_or(false) || after.is_none() {
            return Ok(listed);
        }
    }
}

/// The filter that lists what a table's next run takes: objects created since its cursor, less the
/// lookback; everything on the first run.
fn created_since(cursor: Option<SystemTime>, lookback: Duration) -> Vec<(String, String)> {
    match cursor {
        Some(cursor) => {
            let since = unix(cursor).saturating_sub(lookback.as_secs() as i64);
            vec![("created[gte]".to_string(), since.to_string())]
        }
        None => Vec::new(),
    }
}

/// One table of a Stripe source, as `sluice preview` shows it before a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StripeTablePreview {
    /// The Stripe object's API path.
    pub object: String,
    /// The table's name.
    pub table: String,
    /// Objects Stripe holds.
    pub in_stripe: u64,
    /// Of those, the ones the next run lists (all of them on the first run).
    pub to_list: u64,
    /// Rows the table holds now; `None` before its first import.
    pub rows: Option<u64>,
}

impl Runner<'_> {
    /// The tables of a Stripe source with their counts, listed from Stripe; nothing is written.
    pub fn preview_stripe(&self, name: &str) -> Result<Vec<StripeTablePreview>, SyncError> {
        let dataflow = self.config().dataflow(name)?;
        let crate::config::SourceConfig::Stripe(source) = &dataflow.source else {
            return Err(SyncError::Plan(format!("dataflow `{name}` does not read Stripe")));
        };
        let plan_error = |message: String| SyncError::Plan(format!("dataflow `{name}`: {message}"));
        let client = StripeClient::new(source.client_settings()).map_err(plan_error)?;
        let mut state =
            StateStore::open_read_only(&self.config().state_database()).map_err(state_error(name))?;
        let sink_url = self.config().sink_database(dataflow);
        let lookback = source.lookback();
        let mut tables = Vec::new();
        for ((scope, table), object) in
            self.config().dataflow_tables(name, dataflow).into_iter().zip(&source.tables)
        {
            let cursor = match &mut state {
                Some(state) => state.cursor(&scope).map_err(state_error(name))?,
                None => None,
            };
            let ignore = |_: &[Json]| Ok(());
            let in_stripe = list_pages(self.runtime(), &client, object, &[], ignore).map_err(plan_error)?;
            let to_list = match cursor {
                Some(_) => {
                    list_pages(self.runtime(), &client, object, &created_since(cursor, lookback), ignore)
                        .map_err(plan_error)?
                }
                None => in_stripe,
            };
            let rows = sink::table_shape(&sink_url, &scope, &table).map(|(rows, _)| rows);
            tables.push(StripeTablePreview { object: object.clone(), table, in_stripe, to_list, rows });
        }
        Ok(tables)
    }
}

/// The API path of an object type, as events name it (`customer` ─► `customers`).
fn api_path(kind: &str) -> String {
    format!("{kind}s")
}

fn describe(path: &str, error: &StripeError) -> String {
    format!("listing Stripe's {path} failed: {error}")
}

fn unix(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn from_unix(seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds.max(0) as u64)
}
