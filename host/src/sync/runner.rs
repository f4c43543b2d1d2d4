//! One run of a dataflow: it plans which objects to take (the listing against the ledger, in the run's
//! window), loads them (`load`, on threads of its own or, where the dataflow shares its work, with the
//! workers of every process), and records how the run ended.

use super::load::{DataflowRun, INTERRUPTED, ObjectReport, reading, reconcile};
use super::member_format::{FormatLoader, MemberFormats};
use super::plan::{Decision, Plan, PlannedObject, Window, next_cursor, plan, taken_at_any_age};
use super::registry::EMPTY;
use super::stores::{DataflowStores, state_error};
use super::worker::{SharedObjects, WorkerPool};
use super::{Progress, Registry, StopSignal, SyncError};
use crate::config::{Config, DataflowConfig, SourceConfig};
use crate::object::ObjectMeta;
use crate::plugin::{FormatPlugin, PluginHost, PluginSet, TemplatePlugin};
use crate::sink::{TableSink, TableSpec};
use crate::source::{self, MANY_OBJECTS, Source, archive};
use crate::state::{ObjectOutcome, ObjectStatus, RunCounts, RunStatus, StateError, StateStore, Worker};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};
use tokio::runtime::Handle;

/// How often a run whose objects workers share looks how they stand.
const WORK_POLL: Duration = Duration::from_millis(100);

/// The stop signal of runs nobody stops from outside.
static NOT_STOPPED: StopSignal = StopSignal::new();

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

/// How the dataflow `name` reads its objects with `runner`'s plugins: a worker claims only objects of runs
/// that read them the same way (the same plugins, builds, options and table).
pub fn reading_of(runner: &Runner<'_>, name: &str) -> Result<String, SyncError> {
    let dataflow = runner.config().dataflow(name)?;
    let plugin = runner.load_plugin(name, dataflow)?;
    let template = runner.load_template(name, dataflow)?;
    Ok(reading(name, dataflow, &plugin, template.as_ref()))
}

/// The runner makes the shared objects of its dataflows: it loads their plugins and builds their sources.
impl<'r> SharedObjects<'r> {
    /// Loads the dataflow `name`'s plugins and builds its source, as `runner` has them.
    pub fn new(runner: &'r Runner<'r>, name: &'r str) -> Result<SharedObjects<'r>, SyncError> {
        let dataflow = runner.config().dataflow(name)?;
        let plugin = runner.load_plugin(name, dataflow)?;
        let template = runner.load_template(name, dataflow)?;
        let reading = reading(name, dataflow, &plugin, template.as_ref());
        let source = runner.build_source(name, dataflow)?;
        Ok(SharedObjects {
            config: runner.config(),
            stop: runner.stop(),
            runtime: runner.runtime(),
            name,
            dataflow,
            plugin,
            template,
            reading,
            source,
            member_formats: MemberFormats::new(runner, name),
        })
    }

    /// The shared objects of `run`, loaded with its plugins and `source`.
    fn of_run(runner: &'r Runner<'r>, run: &DataflowRun<'r>, source: Arc<dyn Source>) -> SharedObjects<'r> {
        SharedObjects {
            config: runner.config(),
            stop: runner.stop(),
            runtime: runner.runtime(),
            name: run.name,
            dataflow: run.dataflow,
            plugin: run.plugin.clone(),
            template: run.template.cloned(),
            reading: run.reading.clone(),
            source,
            member_formats: MemberFormats::new(runner, run.name),
        }
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
