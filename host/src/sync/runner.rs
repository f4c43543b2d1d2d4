//! One run of a dataflow.
//!
//! Per object, three things overlap: the source's bytes arrive on the async runtime, a parser thread runs
//! them through the format plugin, and this thread writes the batches into the object's transaction. The
//! object commits with its marker; only then does the ledger say it is loaded. A killed process therefore
//! leaves, at worst, a committed object the ledger does not know yet: the next run reads the sink's markers
//! first and records it.

use super::member_format::{FormatLoader, MemberFormats};
use super::object_input::{OpenFailure, open_input};
use super::plan::{Decision, Plan, PlannedObject, Window, next_cursor, plan, taken_at_any_age};
use super::registry::EMPTY;
use super::stores::{DataflowStores, state_error};
use super::worker::{SharedObjects, Worker, WorkerPool};
use super::{Progress, Registry, StopSignal, SyncError};
use crate::config::{Config, DataflowConfig, SourceConfig};
use crate::object::ObjectMeta;
use crate::parse::{ParseError, ParseSummary};
use crate::plugin::{FormatPlugin, Parsed, PluginHost, PluginSet, TemplatePlugin};
use crate::sink::{TableSink, TableSpec};
use crate::source::{self, MANY_OBJECTS, Source, SourceError, archive};
use crate::state::{
    Lease, LedgerEntry, ObjectOutcome, ObjectStatus, RunCounts, RunStatus, StateError, StateStore,
};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant, SystemTime};
use tokio::runtime::Handle;

/// Calls' worth of batches the parser may run ahead of the writer.
const PARSED_AHEAD: usize = 2;

/// How often a run whose objects workers share looks how they stand.
const WORK_POLL: Duration = Duration::from_millis(100);

/// The stop signal of runs nobody stops from outside.
static NOT_STOPPED: StopSignal = StopSignal::new();

/// The error of an object given up because its run was asked to stop.
pub const INTERRUPTED: &str = "interrupted: the run was asked to stop before this object committed";

/// How one object of a run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectReport {
    /// The object's key.
    pub key: String,
    /// How it stands after the run.
    pub status: ObjectStatus,
    /// Rows loaded from it.
    pub rows: u64,
    /// Rows of it refused.
    pub rejected: u64,
    /// Bytes read from the source (compressed, where the object is).
    pub bytes: u64,
    /// Why it failed or is pending, where it did not load.
    pub error: Option<String>,
    /// How long it took.
    pub elapsed: Duration,
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The dataflow.
    pub dataflow: String,
    /// The run's number.
    pub run_id: i64,
    /// How it ended.
    pub status: RunStatus,
    /// Its totals.
    pub counts: RunCounts,
    /// The run's error: why it failed, or which objects failed.
    pub error: Option<String>,
    /// Each object it took.
    pub objects: Vec<ObjectReport>,
    /// How long it took.
    pub elapsed: Duration,
}

impl RunReport {
    /// Counts the run in Sluice's metrics ([`crate::metrics`]): how it ended, and what it moved.
    pub fn record_metrics(&self) {
        use crate::metrics::{BYTES, OBJECTS, OBJECTS_FAILED, REJECTS, ROWS, RUNS, last_success};
        let dataflow = self.dataflow.clone();
        let counts = self.counts;
        metrics::counter!(RUNS, "dataflow" => dataflow.clone(), "status" => self.status.as_str())
            .increment(1);
        metrics::counter!(OBJECTS, "dataflow" => dataflow.clone()).increment(counts.objects);
        metrics::counter!(OBJECTS_FAILED, "dataflow" => dataflow.clone()).increment(counts.failed_objects);
        metrics::counter!(ROWS, "dataflow" => dataflow.clone()).increment(counts.rows);
        metrics::counter!(REJECTS, "dataflow" => dataflow.clone()).increment(counts.rejected);
        metrics::counter!(BYTES, "dataflow" => dataflow.clone()).increment(counts.bytes);
        if self.status == RunStatus::Succeeded {
            last_success(&dataflow, SystemTime::now());
        }
    }

    /// Records in `state` that a run of `name` starts (and the dataflow's settings as they are now); the
    /// report the run fills.
    pub(super) fn begin(
        state: &mut StateStore,
        name: &str,
        dataflow: &DataflowConfig,
    ) -> Result<RunReport, StateError> {
        state.note_dataflow(name, &dataflow.fingerprint(), SystemTime::now())?;
        let run_id = state.begin_run(name, SystemTime::now())?;
        Ok(RunReport {
            dataflow: name.to_string(),
            run_id,
            status: RunStatus::Running,
            counts: RunCounts::default(),
            error: None,
            objects: Vec::new(),
            elapsed: Duration::ZERO,
        })
    }

    /// Records how the run ended: failed with the error `outcome` holds, if it holds one; else as the
    /// run concluded. Where the state store's connection was lost, a new one records it; where the store
    /// cannot be reached at all, the report says so, and keeps what the run did (the ledger has each object
    /// it committed, and its run shows as interrupted once its lease has gone).
    pub(super) fn end(&mut self, state: &mut StateStore, outcome: Result<(), String>, started: Instant) {
        if let Err(error) = outcome {
            self.status = RunStatus::Failed;
            self.error = Some(error);
        }
        let end = |state: &mut StateStore| {
            state.end_run(self.run_id, self.status, self.counts, self.error.as_deref(), SystemTime::now())
        };
        if let Err(lost) = end(state).or_else(|_| state.reopen().and_then(|()| end(state))) {
            self.status = RunStatus::Failed;
            let before = self.error.take().map(|e| format!("{e}; ")).unwrap_or_default();
            self.error = Some(format!("{before}the run's end could not be recorded: {lost}"));
        }
        self.elapsed = started.elapsed();
    }

    /// Takes back an object reported loaded whose commit, made later with others, failed (`why`).
    fn not_committed(&mut self, key: &str, why: Option<&String>) {
        let Some(object) = self.objects.iter_mut().find(|o| o.key == key && o.status == ObjectStatus::Loaded)
        else {
            return;
        };
        object.status = ObjectStatus::Pending;
        object.error = Some(format!(
            "dataflow `{}`, object `{key}`: its rows were written but the commit that was to hold them failed{}",
            self.dataflow,
            why.map(|w| format!(": {w}")).unwrap_or_default()
        ));
        self.counts.rows -= object.rows;
        self.counts.rejected -= object.rejected;
        self.counts.failed_objects += 1;
    }

    /// Marks the run interrupted (it was asked to stop), with `left` of its `what` not loaded.
    pub(super) fn interrupted(&mut self, left: usize, what: &str) {
        let before = self.error.take().map(|e| format!("; {e}")).unwrap_or_default();
        self.status = RunStatus::Interrupted;
        self.error = Some(format!(
            "interrupted: the run was asked to stop; {left} {what} left for the next run{before}"
        ));
    }

    /// Marks the run failed because it lost its lease (`why`), with `left` of its `what` not taken.
    pub(super) fn lost_lease(&mut self, why: &str, left: usize, what: &str) {
        let before = self.error.take().map(|e| format!("; {e}")).unwrap_or_default();
        self.status = RunStatus::Failed;
        self.error = Some(format!("{why}; {left} {what} left for the next run{before}"));
    }

    /// Sets the status and error from how the run's `what` (objects, tables) ended: succeeded when all
    /// loaded, failed when none did, partial between, with the error of each that failed.
    pub(super) fn conclude(&mut self, what: &str) {
        let failed: Vec<&ObjectReport> =
            self.objects.iter().filter(|o| o.status != ObjectStatus::Loaded).collect();
        self.status = match (failed.len(), self.objects.len()) {
            (0, _) => RunStatus::Succeeded,
            (f, n) if f == n => RunStatus::Failed,
            _ => RunStatus::Partial,
        };
        if !failed.is_empty() {
            let errors: Vec<String> = failed.iter().filter_map(|o| o.error.clone()).collect();
            self.error = Some(format!(
                "{} of {} {what} failed: {}",
                failed.len(),
                self.objects.len(),
                errors.join("; ")
            ));
        }
    }
}

/// Runs dataflows of one configuration.
pub struct Runner<'a> {
    config: &'a Config,
    host: &'a PluginHost,
    runtime: Handle,
    plugins: Option<&'a PluginSet>,
    stop: &'a StopSignal,
    registry: &'a Registry,
    /// This process's worker, where a daemon runs one: it loads the shared objects of the runs here too.
    workers: Option<&'a WorkerPool>,
}

impl<'a> Runner<'a> {
    /// `runtime` drives the sources' I/O; the runner itself blocks, so call it off the runtime's threads.
    pub fn new(config: &'a Config, host: &'a PluginHost, runtime: Handle) -> Runner<'a> {
        Runner { config, host, runtime, plugins: None, stop: &NOT_STOPPED, registry: &EMPTY, workers: None }
    }

    /// Runs with plugins loaded ahead (by name) rather than loading them from their files at each run, so
    /// that a plugin file replaced by something that does not load leaves the one loaded before in service.
    /// A plugin the set lacks is loaded as usual.
    pub fn with_plugins(mut self, plugins: &'a PluginSet) -> Runner<'a> {
        self.plugins = Some(plugins);
        self
    }

    /// Runs that stop when `stop` says: between objects when it drains, at once when it aborts.
    pub fn with_stop(mut self, stop: &'a StopSignal) -> Runner<'a> {
        self.stop = stop;
        self
    }

    /// Runs whose shared objects (see [`super::worker`]) this process loads with `workers`, beside the
    /// workers of other processes, rather than on threads of the run's own.
    pub fn with_workers(mut self, workers: &'a WorkerPool) -> Runner<'a> {
        self.workers = Some(workers);
        self
    }

    /// Runs whose custom sources and sinks (`type = "custom"`) are the ones `registry` holds.
    pub fn with_registry(mut self, registry: &'a Registry) -> Runner<'a> {
        self.registry = registry;
        self
    }

    pub(super) fn registry(&self) -> &Registry {
        self.registry
    }

    pub(super) fn stop(&self) -> &StopSignal {
        self.stop
    }

    pub(super) fn runtime(&self) -> &Handle {
        &self.runtime
    }

    pub(super) fn config(&self) -> &Config {
        self.config
    }

    pub(super) fn load_plugin(
        &self,
        name: &str,
        dataflow: &DataflowConfig,
    ) -> Result<FormatPlugin, SyncError> {
        self.load_format(name, &dataflow.file_format().plugin)
    }

    /// The format plugin `plugin`, for the dataflow `name`: loaded ahead, or from its file now.
    pub(super) fn load_format(&self, name: &str, plugin: &str) -> Result<FormatPlugin, SyncError> {
        if let Some(loaded) = self.plugins.and_then(|set| set.format(plugin)) {
            return Ok(loaded.clone());
        }
        let spec = self.config.plugin_spec(plugin)?;
        self.host
            .load_format(&spec)
            .map_err(|source| SyncError::Plugin { dataflow: name.to_string(), source })
    }

    /// The dataflow's data template, where it has one.
    pub(super) fn load_template(
        &self,
        name: &str,
        dataflow: &DataflowConfig,
    ) -> Result<Option<TemplatePlugin>, SyncError> {
        let Some(template) = &dataflow.template else { return Ok(None) };
        let plugin_error = |source| SyncError::Plugin { dataflow: name.to_string(), source };
        let plugin = match self.plugins.and_then(|set| set.template(&template.plugin)) {
            Some(loaded) => loaded.clone(),
            None => self
                .host
                .load_template(&self.config.template_spec(&template.plugin)?)
                .map_err(plugin_error)?,
        };
        // A mapping the template refuses would fail every object alike: refuse it once, before any.
        let options_key = format!("[dataflows.{name}.template.options]");
        plugin.open(&options_key, &template.option_pairs()).map_err(plugin_error)?;
        Ok(Some(plugin))
    }

    pub(super) fn build_source(
        &self,
        name: &str,
        dataflow: &DataflowConfig,
    ) -> Result<Arc<dyn Source>, SyncError> {
        let built = match self.registry.source(dataflow) {
            Some(registered) => registered,
            None => self.runtime.block_on(source::build(self.config, dataflow)).map(Arc::from),
        };
        built.map_err(|source| SyncError::Source { dataflow: name.to_string(), source })
    }

    /// Runs the dataflow called `name` now.
    pub fn run(&self, name: &str, progress: &dyn Progress) -> Result<RunReport, SyncError> {
        let dataflow = self.config.dataflow(name)?;
        if let SourceConfig::Stripe(stripe) = &dataflow.source {
            return self.run_stripe(name, dataflow, stripe, progress);
        }
        self.run_files(name, dataflow, Discovery::Listing, progress).map(|(report, _)| report)
    }

    /// Runs the dataflow called `name` now on `objects`, which the source's event notifications named,
    /// without listing it. The ledger still decides which of them it loads (one loaded before is not
    /// loaded again), and the cursor stays where the listings of scheduled runs left it, so that those
    /// still catch what no event named. Returns the run's report, and the versions of `objects` the ledger
    /// has settled after it (loaded, or failed for good): those whose messages are done with.
    pub fn run_objects(
        &self,
        name: &str,
        objects: Vec<ObjectMeta>,
        progress: &dyn Progress,
    ) -> Result<(RunReport, HashSet<(String, String)>), SyncError> {
        let dataflow = self.config.dataflow(name)?;
        if !matches!(dataflow.source, SourceConfig::S3(_) | SourceConfig::Local(_) | SourceConfig::Custom(_))
        {
            return Err(SyncError::Plan(format!("dataflow `{name}`: its source holds records, not objects")));
        }
        // An archive an event named is read as its members; its message is done with once they all are.
        let compression = dataflow.file_format().compression;
        let mut archives: Vec<ObjectMeta> =
            objects.iter().filter(|object| archive::is_archive(&object.key, compression)).cloned().collect();
        let objects = if archives.is_empty() {
            objects
        } else {
            let source = self.build_source(name, dataflow).map_err(|e| SyncError::Plan(e.to_string()))?;
            archive::expand(&self.runtime, source.as_ref(), objects, compression, |_| true)
                .map_err(|e| SyncError::Plan(format!("dataflow `{name}`: {e}")))?
        };
        // One whose directory could not be read stays whole: it is an object of the run, settled or not
        // as the ledger says, not an archive of no members (which would be settled at once).
        archives.retain(|whole| !objects.iter().any(|object| object.key == whole.key));
        let members: Vec<(String, String)> = objects
            .iter()
            .filter(|object| archive::Member::of(object).is_some())
            .map(|object| (object.key.clone(), object.etag.clone()))
            .collect();
        let (report, mut settled) = self.run_files(name, dataflow, Discovery::Given(objects), progress)?;
        for whole in archives {
            let prefix = format!("{}!/", whole.key);
            let mut its = members.iter().filter(|(key, _)| key.starts_with(&prefix));
            if its.all(|member| settled.contains(member)) {
                settled.insert((whole.key, whole.etag));
            }
        }
        Ok((report, settled))
    }

    /// A run of a dataflow that reads files, finding them as `discovery` says; with the versions of given
    /// objects the ledger has settled after it.
    fn run_files(
        &self,
        name: &str,
        dataflow: &DataflowConfig,
        discovery: Discovery,
        progress: &dyn Progress,
    ) -> Result<(RunReport, HashSet<(String, String)>), SyncError> {
        let started = Instant::now();
        let plugin = self.load_plugin(name, dataflow)?;
        let template = self.load_template(name, dataflow)?;
        // Held to the end of the run (the lock with it): a second process running the dataflow is
        // refused, never interleaved.
        let mut stores = DataflowStores::open(self.config, name, dataflow, self.registry)?;
        let lease = stores.lease().clone();
        let state = &mut stores.state;
        let mut report = RunReport::begin(state, name, dataflow).map_err(state_error(name))?;
        let run_id = report.run_id;
        let member_formats = MemberFormats::new(self, name);
        let run = DataflowRun {
            name,
            dataflow,
            reading: reading(name, dataflow, &plugin, template.as_ref()),
            plugin: &plugin,
            member_formats: &member_formats,
            template: template.as_ref(),
            run_id,
            progress,
            runtime: &self.runtime,
            stop: self.stop,
            lease: &lease,
        };
        let given: Vec<String> = match &discovery {
            Discovery::Listing => Vec::new(),
            Discovery::Given(objects) => objects.iter().map(|object| object.key.clone()).collect(),
        };
        let outcome = self.load(&run, state, stores.sink.as_mut(), discovery, &mut report);
        let outcome = outcome.map_err(|error| explain_taken_over(state, error));
        report.end(state, outcome, started);
        let keys: Vec<&str> = given.iter().map(String::as_str).collect();
        let settled = state.ledger_of(name, &keys).map_err(state_error(name))?;
        let settled = settled
            .into_iter()
            .filter(|entry| entry.status.is_settled())
            .map(|entry| (entry.key, entry.etag))
            .collect();
        Ok((report, settled))
    }

    /// The run's work after it is recorded as started; an error here fails the run.
    fn load(
        &self,
        run: &DataflowRun<'_>,
        state: &mut StateStore,
        sink: &mut dyn TableSink,
        discovery: Discovery,
        report: &mut RunReport,
    ) -> Result<(), String> {
        let name = run.name;
        reconcile(name, state, sink)?;
        let source = self.build_source(name, run.dataflow).map_err(|e| e.to_string())?;
        let listed = matches!(discovery, Discovery::Listing);
        let plan = match discovery {
            Discovery::Listing => {
                self.plan(name, run.dataflow, source.as_ref(), Some(state), Some(&run.reading))?
            }
            Discovery::Given(objects) => plan_given(name, objects, state, &run.reading)?,
        };
        run.progress.planned(name, &plan);

        let mut settled_now = HashSet::new();
        let mut finish = |object: &ObjectMeta, outcome: ObjectReport| -> Result<(), String> {
            let ledger = ObjectOutcome {
                status: outcome.status,
                rows: outcome.rows,
                rejected: outcome.rejected,
                bytes: outcome.bytes,
                error: outcome.error.as_deref(),
                reader: Some(&run.reading),
                worker: None,
            };
            state.record_object(name, object, ledger, run.run_id, SystemTime::now()).map_err(|e| {
                format!("dataflow `{name}`, object `{}`: its outcome was not recorded: {e}", object.key)
            })?;
            run.progress.object_finished(object, &outcome);
            tally(report, &mut settled_now, object, outcome);
            Ok(())
        };

        let mut stopped = None;
        let objects: Vec<&ObjectMeta> = plan.to_import().collect();
        let sink_url = self.config.sink_database(run.dataflow);
        let shared = self.config.shares_work(run.dataflow);
        let parallel = run.dataflow.parallel_loads(&sink_url).min(objects.len().saturating_sub(1));
        // The first object alone: it may create the table, which the others then write beside each other,
        // in this process or in workers anywhere.
        let first = if shared || parallel > 1 { 1 } else { objects.len() };
        let (alone, together) = objects.split_at(first.min(objects.len()));
        std::thread::scope(|scope| -> Result<(), String> {
            let mut next = None;
            for (done, object) in alone.iter().enumerate() {
                if run.halting() {
                    break;
                }
                run.progress.object_started(object);
                let parsing = next.take().unwrap_or_else(|| run.start_parse(scope, source.as_ref(), object));
                // The next object's download and first batches begin while this one loads, so that a sink
                // taking one object at a time never waits for a request or a plugin between two. Given
                // up with the run, its parse stops at its next hand-over.
                next = alone.get(done + 1).map(|next| run.start_parse(scope, source.as_ref(), next));
                finish(object, run.load_parsed(sink, object, parsing))?;
                if let Some(reason) = sink.refuses_all() {
                    let left = alone.len() - done - 1;
                    stopped = Some(format!(
                        "{reason}; the run stopped there, {left} objects left for the next run"
                    ));
                    break;
                }
            }
            Ok(())
        })?;
        if !together.is_empty() && stopped.is_none() && shared {
            for (object, outcome) in self.share(run, state, source.clone(), together, parallel)? {
                tally(report, &mut settled_now, &object, outcome);
            }
        } else if !together.is_empty() && stopped.is_none() {
            let spec = TableSpec::of(run.dataflow, name);
            let mut writers = Vec::with_capacity(parallel - 1);
            for _ in 1..parallel {
                let mut writer = crate::sink::open(&sink_url, name, &spec).map_err(|e| e.to_string())?;
                writer.fence(run.lease.token()).map_err(|e| e.to_string())?;
                writers.push(writer);
            }
            let failed = run.load_together(source.as_ref(), sink, writers, together, &mut finish)?;
            // An object that failed beside others (two of them adding the same column, say, where the
            // database gives up one) gets one more try, alone.
            for object in failed.into_iter().take_while(|_| !run.halting()) {
                run.progress.object_started(object);
                finish(object, run.load_object(source.as_ref(), sink, object))?;
            }
        }

        let finished = sink.finish_run().map_err(|e| e.to_string());
        if sink.defers_commits() {
            // Objects whose group did not commit are pending again, and hold the cursor back.
            for lost in reconcile(name, state, sink)? {
                settled_now.remove(&(lost.key.clone(), lost.etag.clone()));
                report.not_committed(&lost.key, finished.as_ref().err());
            }
        }
        finished?;

        let settled = |p: &PlannedObject| match p.decision {
            Decision::AlreadyImported | Decision::FailedBefore | Decision::Skipped => true,
            _ => settled_now.contains(&(p.object.key.clone(), p.object.etag.clone())),
        };
        if let Some(cursor) = next_cursor(&plan, settled).filter(|_| listed) {
            state.advance_cursor(name, cursor, run.run_id, SystemTime::now()).map_err(|e| e.to_string())?;
        }

        report.conclude("objects");
        if let Some(stopped) = stopped {
            report.status = RunStatus::Failed;
            report.error = Some(stopped);
        } else if let Some(lost) = run.lease.lost() {
            report.lost_lease(&lost, objects.len() - settled_now.len(), "objects");
        } else if self.stop.draining() && settled_now.len() < objects.len() {
            report.interrupted(objects.len() - settled_now.len(), "objects");
        }
        Ok(())
    }

    /// Queues `objects` of `run` for the workers (see [`super::worker`]) and waits until each has ended:
    /// loaded by the workers of every process, this one's too, and on threads of this run (`helpers` of
    /// them, or one beside this process's worker pool where it has one), so that a run never waits for a
    /// worker that reads its objects otherwise. Returns each object's outcome, as its worker recorded it.
    fn share(
        &self,
        run: &DataflowRun<'_>,
        state: &mut StateStore,
        source: Arc<dyn Source>,
        objects: &[&ObjectMeta],
        helpers: usize,
    ) -> Result<Vec<(ObjectMeta, ObjectReport)>, String> {
        let (name, run_id) = (run.name, run.run_id);
        let failed = |what: &str, e: StateError| format!("dataflow `{name}`: {what} failed: {e}");
        state
            .queue_work(name, run_id, run.lease.token(), &run.reading, objects)
            .map_err(|e| failed("queuing its objects for the workers", e))?;
        let own = match self.workers {
            Some(_) => None,
            None => Some(
                Worker::start(&self.config.state_database(), self.config.lease_timeout())
                    .map_err(|e| failed("starting this run's worker", e))?,
            ),
        };
        let (worker, helpers) = match (&own, self.workers) {
            (Some(own), _) => (own, helpers.max(1)),
            (None, Some(pool)) => (pool.worker(), 1),
            (None, None) => unreachable!("a run without a pool starts a worker of its own"),
        };
        let shared = SharedObjects::of_run(self, run, source);
        let settled = std::sync::atomic::AtomicBool::new(false);
        let waited = std::thread::scope(|scope| -> Result<(), String> {
            let helping: Vec<_> = (0..helpers)
                .map(|_| {
                    let (shared, settled) = (&shared, &settled);
                    scope.spawn(move || -> Result<(), String> {
                        // Objects a worker elsewhere gave up (it died) come back to be claimed: look again
                        // until none is left anywhere.
                        while !settled.load(Ordering::Relaxed) {
                            shared.work(worker, Some(run_id), run.progress)?;
                            std::thread::sleep(WORK_POLL);
                        }
                        Ok(())
                    })
                })
                .collect();
            let mut cancelled = false;
            let waited = loop {
                let progress = match state.work_progress(run_id) {
                    Ok(progress) => progress,
                    Err(e) => break Err(failed("reading its workers' progress", e)),
                };
                if progress.settled() || run.lease.lost().is_some() {
                    break Ok(());
                }
                if self.stop.draining() || cancelled {
                    // Objects no worker took yet are left for the next run; those in flight end as they do.
                    cancelled = true;
                    if let Err(e) = state.cancel_queued_work(run_id) {
                        break Err(failed("giving up its queued objects", e));
                    }
                } else if let Some(pool) = self.workers.filter(|_| progress.queued > 0) {
                    pool.ring();
                }
                std::thread::sleep(WORK_POLL);
            };
            settled.store(true, Ordering::Relaxed);
            for helper in helping {
                helper.join().expect("a worker thread does not panic")?;
            }
            waited
        });
        drop(own);
        waited?;
        let outcomes = state.run_work(run_id).map_err(|e| failed("reading its objects' outcomes", e))?;
        let reports = outcomes
            .into_iter()
            .map(|work| {
                let object = work.object;
                let status = work.status.unwrap_or(ObjectStatus::Pending);
                let error = match (work.error, work.status) {
                    (Some(error), _) => Some(error),
                    (None, Some(ObjectStatus::Pending)) => {
                        Some(format!("dataflow `{name}`, object `{}`: {INTERRUPTED}", object.key))
                    }
                    (None, None) => Some(format!(
                        "dataflow `{name}`, object `{}`: still claimed by worker {} when the run ended",
                        object.key,
                        work.worker.as_deref().unwrap_or("(none)")
                    )),
                    (None, Some(_)) => None,
                };
                let report = ObjectReport {
                    key: object.key.clone(),
                    status,
                    rows: work.rows,
                    rejected: work.rejected,
                    bytes: work.bytes,
                    error,
                    elapsed: work.elapsed,
                };
                (object, report)
            })
            .collect();
        state.forget_work(run_id).map_err(|e| failed("clearing its finished work", e))?;
        Ok(reports)
    }

    /// Lists the source, with a warning where it holds so much that every run's listing costs.
    pub(super) fn list(&self, name: &str, source: &dyn Source) -> Result<Vec<ObjectMeta>, String> {
        let listing = self.runtime.block_on(source.list()).map_err(|e| format!("dataflow `{name}`: {e}"))?;
        if listing.len() > MANY_OBJECTS {
            tracing::warn!(
                dataflow = name,
                objects = listing.len(),
                "{} holds more than {MANY_OBJECTS} objects and every run lists them all; a prefix that narrows it makes runs faster",
                source.describe()
            );
        }
        Ok(listing)
    }

    /// Lists the source and plans the run against the ledger and cursor (none yet without a state store).
    pub(super) fn plan(
        &self,
        name: &str,
        dataflow: &DataflowConfig,
        source: &dyn Source,
        state: Option<&mut StateStore>,
        reading: Option<&str>,
    ) -> Result<Plan, String> {
        let listing = self.list(name, source)?;
        let (ledger, cursor) = match state {
            Some(state) => (
                state.ledger(name).map_err(|e| e.to_string())?,
                state.cursor(name).map_err(|e| e.to_string())?,
            ),
            None => (Vec::new(), None),
        };
        let window = Window {
            now: SystemTime::now(),
            cursor,
            initial_lookback: dataflow.initial_lookback(),
            overlap: dataflow.overlap(),
        };
        // ZIP archives as their members: those the window holds, and those the plan would take a member
        // of at any age (pending, or failed when read another way), or the archive itself (pending as
        // its directory could not be read).
        let taken: HashSet<&str> = ledger
            .iter()
            .filter(|entry| taken_at_any_age(entry, reading))
            .map(|entry| archive::archive_key(&entry.key).unwrap_or(&entry.key))
            .collect();
        let start = window.start();
        let wanted = |whole: &ObjectMeta| whole.last_modified >= start || taken.contains(whole.key.as_str());
        let compression = dataflow.file_format().compression;
        let listing = archive::expand(&self.runtime, source, listing, compression, wanted)
            .map_err(|e| format!("dataflow `{name}`: {e}"))?;
        Ok(plan(listing, &ledger, window, reading))
    }
}

impl FormatLoader for Runner<'_> {
    fn load_format(&self, dataflow: &str, plugin: &str) -> Result<FormatPlugin, SyncError> {
        Runner::load_format(self, dataflow, plugin)
    }
}

/// `error`, which failed a run, with why where the run's lease was taken over meanwhile. A run frozen past
/// its lease (a stopped VM) finds, once woken, its state store's session ended by the server, and fails
/// on that: the takeover is the cause worth saying. The store is reopened for the asking.
fn explain_taken_over(state: &mut StateStore, error: String) -> String {
    match state.taken_over().or_else(|_| state.reopen().and_then(|()| state.taken_over())) {
        Ok(Some(why)) => format!("{why}; {error}"),
        _ => error,
    }
}

/// How a run finds its objects.
enum Discovery {
    /// By listing the source: a scheduled or asked-for run.
    Listing,
    /// Named by the source's event notifications.
    Given(Vec<ObjectMeta>),
}

/// The plan of a run given its objects: each is decided against its own versions in the ledger, and none
/// is outside the window, as each is new to the source.
fn plan_given(
    name: &str,
    objects: Vec<ObjectMeta>,
    state: &mut StateStore,
    reading: &str,
) -> Result<Plan, String> {
    let keys: Vec<&str> = objects.iter().map(|object| object.key.as_str()).collect();
    let ledger = state.ledger_of(name, &keys).map_err(|e| format!("dataflow `{name}`: {e}"))?;
    let window = Window {
        now: SystemTime::now(),
        cursor: None,
        initial_lookback: Duration::MAX,
        overlap: Duration::ZERO,
    };
    Ok(plan(objects, &ledger, window, Some(reading)))
}

/// Counts an object's `outcome` in the run's `report`, and among the objects `settled` by the run.
fn tally(
    report: &mut RunReport,
    settled: &mut HashSet<(String, String)>,
    object: &ObjectMeta,
    outcome: ObjectReport,
) {
    if outcome.status.is_settled() {
        settled.insert((object.key.clone(), object.etag.clone()));
    }
    report.counts.objects += 1;
    report.counts.bytes += outcome.bytes;
    if outcome.status == ObjectStatus::Loaded {
        report.counts.rows += outcome.rows;
        report.counts.rejected += outcome.rejected;
    } else {
        report.counts.failed_objects += 1;
    }
    report.objects.push(outcome);
}

/// How `dataflow` reads its objects now: a fingerprint of its format plugin and template (each by name,
/// build and limits), their options, the compression and the table it writes. The ledger keeps it with an
/// object that failed, so that a fix of any of them (a misspelled option, a higher memory limit, a template
/// that picks fewer columns) makes the object worth trying again, and nothing else does.
pub(super) fn reading(
    name: &str,
    dataflow: &DataflowConfig,
    plugin: &FormatPlugin,
    template: Option<&TemplatePlugin>,
) -> String {
    let format = dataflow.file_format();
    let mut read = format!(
        "{}\n{:?}\n{:?}\n{:?}",
        plugin.identity(),
        format.option_pairs(),
        format.compression,
        TableSpec::of(dataflow, name)
    );
    if let (Some(template), Some(config)) = (template, &dataflow.template) {
        read.push_str(&format!("\n{}\n{:?}", template.identity(), config.option_pairs()));
    }
    format!("{:x}", Sha256::digest(read))[..16].to_string()
}

/// One run of one dataflow: what each of its objects is loaded with.
pub(super) struct DataflowRun<'r> {
    pub name: &'r str,
    pub dataflow: &'r DataflowConfig,
    /// How its objects are read ([`reading`]).
    pub reading: String,
    pub plugin: &'r FormatPlugin,
    /// The formats of archive members that are not the dataflow's.
    pub member_formats: &'r MemberFormats<'r>,
    pub template: Option<&'r TemplatePlugin>,
    pub run_id: i64,
    pub progress: &'r dyn Progress,
    pub runtime: &'r Handle,
    pub stop: &'r StopSignal,
    /// The run's lease (a worker's claim, for a worker loading an object of the run): once it is lost,
    /// no further object is taken under it, and those in flight are given up.
    pub lease: &'r Lease,
}

impl DataflowRun<'_> {
    /// Whether the run must take no further object: it was asked to stop, or it lost its lease.
    pub fn halting(&self) -> bool {
        self.stop.draining() || self.lease.lost().is_some()
    }

    /// The report of `object`, left pending for `error` before it began.
    pub fn unloaded(&self, object: &ObjectMeta, error: String) -> ObjectReport {
        ObjectReport {
            key: object.key.clone(),
            status: ObjectStatus::Pending,
            rows: 0,
            rejected: 0,
            bytes: 0,
            error: Some(format!("dataflow `{}`, object `{}`: {error}", self.name, object.key)),
            elapsed: Duration::ZERO,
        }
    }

    /// Loads `objects` on as many threads as there are writers (`sink` and `others`), each object in its
    /// own transaction, and hands each outcome to `finish` on this thread as it comes. Objects that could
    /// not be loaded this time are returned instead, for another try.
    fn load_together<'o>(
        &self,
        source: &dyn Source,
        sink: &mut dyn TableSink,
        mut others: Vec<Box<dyn TableSink>>,
        objects: &[&'o ObjectMeta],
        finish: &mut dyn FnMut(&ObjectMeta, ObjectReport) -> Result<(), String>,
    ) -> Result<Vec<&'o ObjectMeta>, String> {
        let queue = std::sync::Mutex::new(objects.iter());
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let (sender, receiver) = std::sync::mpsc::channel();
            let mut writers: Vec<&mut dyn TableSink> = vec![sink];
            writers.extend(others.iter_mut().map(|w| -> &mut dyn TableSink { &mut **w }));
            for writer in writers {
                let (queue, stop, sender) = (&queue, &stop, sender.clone());
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) && !self.halting() {
                        let Some(object) = queue.lock().unwrap_or_else(|p| p.into_inner()).next() else {
                            break;
                        };
                        self.progress.object_started(object);
                        let outcome = self.load_object(source, writer, object);
                        if sender.send((*object, outcome)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(sender);
            let mut again = Vec::new();
            for (object, outcome) in receiver {
                if outcome.status == ObjectStatus::Pending {
                    again.push(object);
                } else if let Err(error) = finish(object, outcome) {
                    // The state store failed: the threads finish the objects they hold and take no more.
                    stop.store(true, Ordering::Relaxed);
                    return Err(error);
                }
            }
            Ok(again)
        })
    }

    /// Loads `object` alone: its parse on a thread of its own, its batches into `sink`.
    pub fn load_object(
        &self,
        source: &dyn Source,
        sink: &mut dyn TableSink,
        object: &ObjectMeta,
    ) -> ObjectReport {
        std::thread::scope(|scope| {
            let parsing = self.start_parse(scope, source, object);
            self.load_parsed(sink, object, parsing)
        })
    }

    /// Begins `object`'s download and parse on a thread of `scope`. Its batches wait in a bounded channel,
    /// a few calls' worth at most, until [`Self::load_parsed`] takes them into the sink.
    fn start_parse<'scope, 'env>(
        &'env self,
        scope: &'scope std::thread::Scope<'scope, 'env>,
        source: &'env dyn Source,
        object: &'env ObjectMeta,
    ) -> Parsing<'scope> {
        let (template, runtime) = (self.template, self.runtime);
        let compression = self.dataflow.file_format().compression;
        let (dataflow_plugin, member_formats) = (self.plugin, self.member_formats);
        let dataflow_options = self.dataflow.file_format().option_pairs();
        let template_options = self.dataflow.template.as_ref().map(|t| t.option_pairs()).unwrap_or_default();
        let bytes_read = Arc::new(AtomicU64::new(0));
        let count = bytes_read.clone();
        let (sender, parsed) = sync_channel::<Parsed>(PARSED_AHEAD);
        let parser = scope.spawn(move || {
            let (plugin, options) = match member_formats.other_than(dataflow_plugin, object) {
                None => (dataflow_plugin.clone(), dataflow_options),
                Some(other) => (other.map_err(ParseError::Open)?, Vec::new()),
            };
            let plugin = &plugin;
            let input =
                open_input(runtime, source, object, compression, plugin, count).map_err(|failure| {
                    match failure {
                        OpenFailure::Source(error) => Unparsed::Open(error),
                        OpenFailure::Read(error) => Unparsed::Parse(error),
                    }
                })?;
            let mut template = template
                .map(|t| t.open(&object.key, &template_options))
                .transpose()
                .map_err(ParseError::Open)?;
            let summary = input.parse(plugin, template.as_mut(), &object.key, &options, |parsed| {
                sender.send(parsed).map_err(|_| io::Error::other("the sink stopped taking records"))
            })?;
            Ok(summary)
        });
        Parsing { parsed, parser, bytes_read }
    }

    /// Takes `object`'s batches, as `parsing` hands them over, into the sink: all of them in one
    /// transaction, or none of them.
    fn load_parsed(
        &self,
        sink: &mut dyn TableSink,
        object: &ObjectMeta,
        parsing: Parsing<'_>,
    ) -> ObjectReport {
        let (name, progress) = (self.name, self.progress);
        let started = Instant::now();
        let Parsing { parsed: receiver, parser, bytes_read } = parsing;
        let mut report = ObjectReport {
            key: object.key.clone(),
            status: ObjectStatus::Pending,
            rows: 0,
            rejected: 0,
            bytes: 0,
            error: None,
            elapsed: Duration::ZERO,
        };
        let failed = |mut report: ObjectReport, status: ObjectStatus, error: String, bytes: &AtomicU64| {
            // The writer is dropped uncommitted: none of the rows written before the failure stays.
            (report.rows, report.rejected) = (0, 0);
            report.status = status;
            report.error = Some(format!("dataflow `{name}`, object `{}`: {error}", object.key));
            report.bytes = bytes.load(Ordering::Relaxed);
            report.elapsed = started.elapsed();
            report
        };
        let join = |parser: ScopedJoinHandle<'_, _>| parser.join().expect("the parser thread does not panic");
        // The first batches before the object begins in the sink: an object that cannot be opened, or
        // whose parse fails before it hands anything over, never begins there.
        let first = receiver.recv().ok();
        let (mut parser, mut ended) = (Some(parser), None);
        if first.is_none() {
            match parser.take().map(join) {
                Some(Err(error)) => {
                    let (status, why) = error.outcome();
                    return failed(report, status, why, &bytes_read);
                }
                summary => ended = summary,
            }
        }

        let mut writer = match sink.begin_object(object, self.run_id) {
            Ok(writer) => writer,
            Err(error) => return failed(report, ObjectStatus::Pending, error.to_string(), &bytes_read),
        };
        let mut aborted = None;
        let mut written = Ok(());
        for parsed in first.into_iter().chain(receiver.iter()) {
            if self.stop.aborting() {
                aborted = Some(INTERRUPTED.to_string());
                break;
            }
            if let Some(lost) = self.lease.lost() {
                aborted = Some(lost);
                break;
            }
            let rows = parsed.batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
            written = parsed
                .batches
                .into_iter()
                .try_for_each(|batch| writer.write_owned(batch))
                .and_then(|()| writer.reject(&parsed.rejects));
            if written.is_err() {
                // Dropping the receiver stops the parser at its next hand-over.
                break;
            }
            report.rows += rows;
            report.rejected += parsed.rejects.len() as u64;
            progress.object_progress(object, bytes_read.load(Ordering::Relaxed), report.rows);
        }
        drop(receiver);
        let parsed = match parser {
            Some(parser) => join(parser),
            None => ended.expect("joined where it handed nothing over"),
        };
        if let Some(why) = aborted {
            // The writer is dropped uncommitted: nothing of the object stays.
            return failed(report, ObjectStatus::Pending, why, &bytes_read);
        }
        if let Err(error) = written {
            // A database that went away is worth another run; a table the object can never fit is not.
            let status = if error.permanent { ObjectStatus::Failed } else { ObjectStatus::Pending };
            return failed(report, status, error.to_string(), &bytes_read);
        }
        if let Err(error) = parsed {
            let (status, why) = error.outcome();
            return failed(report, status, why, &bytes_read);
        }
        // Checked once more at the last moment: a claim taken over while the last batch was written.
        if let Some(lost) = self.lease.lost() {
            return failed(report, ObjectStatus::Pending, lost, &bytes_read);
        }
        match writer.commit() {
            Ok(committed) => {
                report.status = ObjectStatus::Loaded;
                report.rows = committed.rows;
                report.rejected = committed.rejected;
                report.bytes = bytes_read.load(Ordering::Relaxed);
                report.elapsed = started.elapsed();
                report
            }
            Err(error) => failed(report, ObjectStatus::Pending, error.to_string(), &bytes_read),
        }
    }
}

/// Squares the ledger with the sink's markers, which are the truth: an object the sink committed but the
/// ledger does not know as loaded (the process stopped between the two commits) is recorded; an object the
/// ledger has as loaded but the sink does not hold (the sink was emptied) is forgotten, to be imported again.
/// Returns the objects forgotten.
pub(super) fn reconcile(
    name: &str,
    state: &mut StateStore,
    sink: &mut dyn TableSink,
) -> Result<Vec<LedgerEntry>, String> {
    if !sink.keeps_markers() {
        return Ok(Vec::new());
    }
    let loaded: Vec<LedgerEntry> = state
        .ledger(name)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|entry| entry.status == ObjectStatus::Loaded)
        .collect();
    let committed = sink.committed_objects().map_err(|e| e.to_string())?;
    let in_sink: HashSet<(&str, &str)> =
        committed.iter().map(|c| (c.key.as_str(), c.etag.as_str())).collect();
    let in_ledger: HashSet<(&str, &str)> = loaded.iter().map(|e| (e.key.as_str(), e.etag.as_str())).collect();

    let missing: Vec<LedgerEntry> =
        loaded.iter().filter(|e| !in_sink.contains(&(e.key.as_str(), e.etag.as_str()))).cloned().collect();
    if !missing.is_empty() {
        tracing::warn!(
            dataflow = name,
            objects = missing.len(),
            "the sink does not hold objects the ledger had as loaded; they will be imported again"
        );
        state.forget_objects(name, &missing).map_err(|e| e.to_string())?;
    }
    for committed in committed.iter().filter(|c| !in_ledger.contains(&(c.key.as_str(), c.etag.as_str()))) {
        let object = ObjectMeta {
            key: committed.key.clone(),
            size: committed.size,
            etag: committed.etag.clone(),
            last_modified: committed.last_modified,
        };
        tracing::info!(
            dataflow = name,
            object = object.key,
            "recording an object the sink committed before the last run stopped"
        );
        let outcome = ObjectOutcome {
            status: ObjectStatus::Loaded,
            rows: committed.rows,
            rejected: committed.rejected,
            bytes: committed.size,
            error: None,
            reader: None,
            worker: None,
        };
        state
            .record_object(name, &object, outcome, committed.run_id, SystemTime::now())
            .map_err(|e| e.to_string())?;
    }
    Ok(missing)
}

/// An object's parse, begun on a thread of its own ([`DataflowRun::start_parse`]).
struct Parsing<'scope> {
    /// Its batches, as the parser hands them over.
    parsed: Receiver<Parsed>,
    parser: ScopedJoinHandle<'scope, Result<ParseSummary, Unparsed>>,
    /// Bytes read from the source so far.
    bytes_read: Arc<AtomicU64>,
}

/// Why an object's parse ended early: the source did not open it, or the parse failed.
#[derive(Debug)]
enum Unparsed {
    Open(SourceError),
    Parse(ParseError),
}

impl Unparsed {
    /// How the object stands after it, and why.
    fn outcome(self) -> (ObjectStatus, String) {
        match self {
            Unparsed::Open(error) => (ObjectStatus::Pending, error.to_string()),
            Unparsed::Parse(error @ (ParseError::Open(_) | ParseError::Plugin(_))) => {
                (ObjectStatus::Failed, error.to_string())
            }
            Unparsed::Parse(ParseError::Read { source, .. }) => {
                // Bytes that do not decompress are the object's fault; a connection that broke is not.
                let status = match source.kind() {
                    io::ErrorKind::InvalidData
                    | io::ErrorKind::InvalidInput
                    | io::ErrorKind::UnexpectedEof => ObjectStatus::Failed,
                    _ => ObjectStatus::Pending,
                };
                (status, format!("reading failed: {source}"))
            }
            Unparsed::Parse(error @ ParseError::Consume { .. }) => (ObjectStatus::Pending, error.to_string()),
        }
    }
}

impl From<ParseError> for Unparsed {
    fn from(error: ParseError) -> Unparsed {
        Unparsed::Parse(error)
    }
}
