//! `sluice daemon`: keeps every dataflow fresh on its schedule, for as long as it runs.
//!
//! - [`schedule`]: a dataflow's schedule as slots on the time line (time zone, jitter, missed slots).
//! - `scheduler`: the loop that starts runs when their slot comes, one per dataflow at a time and at most
//!   `max_concurrent_runs` at once.
//! - `generation`: the configuration and the plugins compiled from it, swapped whole on a reload; an
//!   invalid configuration or a plugin that does not load is refused and the one before keeps running.
//! - `watch`: reloads on SIGHUP and on a change of `connector.toml` or of a plugin's `.wasm` file.
//! - `api`: the HTTP API, `/metrics`, `/healthz` and the dashboard page (`dashboard/`).
//! - `workers`: this daemon as one of the workers sharing runs' objects through a PostgreSQL state store.
//! - `events`: listeners on the dataflows' notification queues, running the objects new events name.
//!
//! A stop (SIGTERM, SIGINT) takes no new work, lets the objects in flight commit within
//! `shutdown_timeout`, rolls back those that did not, records the runs as interrupted and returns.

mod api;
mod events;
mod generation;
pub mod schedule;
mod scheduler;
mod watch;
mod workers;

pub use schedule::Timetable;

use crate::config::Config;
use crate::plugin::{HostSettings, PluginHost, default_cache_dir};
use crate::source::{Notifications, Received};
use crate::state::{LockError, StateStore};
use crate::sync::{ObjectReport, Progress, RunReport, Runner, StopSignal, SyncError};
use generation::Generation;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio::runtime::Handle;
use tokio::sync::{Notify, Semaphore};

/// How long a stopping daemon waits, after rolling back the objects in flight, for their runs to record
/// that they were interrupted.
const ROLLBACK_GRACE: Duration = Duration::from_secs(10);
/// How often a stopping daemon looks whether its runs have ended.
const IDLE_POLL: Duration = Duration::from_millis(50);

/// Records the dashboard's preview shows of the next run's first object.
const PREVIEW_RECORDS: usize = 10;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is not valid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The plugin engine could not start, or a plugin did not load.
    #[error("cannot start the plugin host: {0}")]
    Plugins(String),
    /// The API's address is taken or not allowed.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address of `[daemon] listen`.
        address: std::net::SocketAddr,
        /// Why not.
        source: std::io::Error,
    },
    /// The daemon cannot join the workers of its state store (another daemon holds an SQLite one).
    #[error("{0}")]
    Workers(String),
    /// The runtime, a signal handler or the file watcher could not start.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Where a dataflow is in this daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Activity {
    /// Waiting for a place among `max_concurrent_runs`.
    Queued,
    /// Running now.
    Running,
}

impl Activity {
    /// The activity as the API and the dashboard show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Queued => "queued",
            Activity::Running => "running",
        }
    }
}

/// What started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Its slot came (or was missed while no daemon ran).
    Schedule,
    /// `POST /api/dataflows/{name}/run`.
    Api,
    /// Its notification queue named new objects.
    Events,
}

/// Why a run was not started.
#[derive(Debug, PartialEq, Eq)]
pub enum NotStarted {
    /// The configuration has no such dataflow.
    UnknownDataflow,
    /// It is queued or running already.
    AlreadyActive(Activity),
    /// The daemon is shutting down.
    Stopping,
}

/// A run that failed before it could begin and that the state store could not take either (it was
/// locked or out of reach): kept here and written to the run history once the store answers again.
#[derive(Clone, Debug, Serialize)]
pub struct UnrecordedRun {
    /// The dataflow.
    pub dataflow: String,
    /// When it was to start.
    #[serde(serialize_with = "rfc3339")]
    pub started: SystemTime,
    /// When it failed.
    #[serde(serialize_with = "rfc3339")]
    pub ended: SystemTime,
    /// Why.
    pub error: String,
}

fn rfc3339<S: serde::Serializer>(at: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_seconds(*at))
}

/// The daemon's shared state: what the scheduler, the runs, the reloads and the API all see.
pub struct Daemon {
    config_path: PathBuf,
    host: PluginHost,
    runtime: Handle,
    generation: RwLock<Arc<Generation>>,
    /// The last reload's problems; empty when healthy.
    problems: Mutex<Vec<String>>,
    /// Dataflows queued or running in this process, and what started each.
    active: Mutex<HashMap<String, (Activity, Trigger)>>,
    /// Dataflows whose scheduled slot came during a run of events: it runs when that run ends.
    slot_waiting: Mutex<HashSet<String>>,
    permits: Semaphore,
    stop: StopSignal,
    /// Wakes the scheduler: a reload, a run ended, a stop.
    changed: Notify,
    unrecorded: Mutex<Vec<UnrecordedRun>>,
    started_at: SystemTime,
    /// Where the API listens: the address in force at start-up (a reload does not move it).
    listen: std::net::SocketAddr,
    /// When each dataflow's Delta tables were last optimized by this process.
    optimized: Mutex<HashMap<String, std::time::Instant>>,
    /// What the daemon is as a worker: one of many, or its SQLite state store's only one.
    role: workers::Role,
}

impl Daemon {
    /// Reads the configuration and compiles its plugins; an error here is the daemon's, at start-up.
    pub fn new(config_path: &Path, runtime: Handle) -> Result<Arc<Daemon>, DaemonError> {
        let config = Config::load(config_path)?;
        let cache_dir = config.plugin_cache.clone().or_else(default_cache_dir);
        let host = PluginHost::new(HostSettings { cache_dir })
            .map_err(|e| DaemonError::Plugins(format!("{e:#}")))?;
        let (generation, problems) = Generation::load(&host, config, None, 1);
        for problem in &problems {
            tracing::error!("{problem}");
        }
        let role = workers::join(&generation.config)?;
        let permits = Semaphore::new(generation.config.daemon.max_concurrent_runs());
        let listen = generation.config.daemon.listen();
        Ok(Arc::new(Daemon {
            config_path: config_path.to_path_buf(),
            host,
            runtime,
            generation: RwLock::new(Arc::new(generation)),
            problems: Mutex::new(problems),
            active: Mutex::new(HashMap::new()),
            slot_waiting: Mutex::new(HashSet::new()),
            permits,
            stop: StopSignal::new(),
            changed: Notify::new(),
            unrecorded: Mutex::new(Vec::new()),
            started_at: SystemTime::now(),
            listen,
            optimized: Mutex::new(HashMap::new()),
            role,
        }))
    }

    /// Runs the daemon until SIGTERM or SIGINT: the scheduler, the reloads and the HTTP API. Returns once
    /// the runs in flight have committed or been rolled back.
    pub async fn serve(self: Arc<Self>) -> Result<(), DaemonError> {
        // First, so that nothing the runs count is lost to a recorder not installed yet.
        api::install_recorder();
        let address = self.listen;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| DaemonError::Listen { address, source })?;
        tracing::info!(%address, config = %self.config_path.display(), "sluice daemon listening");
        // The state store's client blocks: off the runtime's own work, so that PostgreSQL's can run.
        tokio::task::block_in_place(|| self.note_last_successes());

        let stop_signals = watch::StopSignals::catch()?;
        let watcher = watch::start(self.clone())?;
        let stopped = Arc::new(Notify::new());
        let server = tokio::spawn(api::serve(self.clone(), listener, stopped.clone()));
        let scheduler = tokio::spawn(scheduler::run(self.clone()));
        let daemon = self.clone();
        let worker =
            std::thread::Builder::new().name("worker".into()).spawn(move || workers::serve(daemon))?;
        let listeners = tokio::spawn(events::serve(self.clone()));

        stop_signals.wait().await;
        tracing::info!("stopping: no new runs; waiting for the objects in flight to commit");
        self.stop.drain();
        self.changed.notify_waiters();
        stopped.notify_waiters();
        let timeout = self.generation().config.daemon.shutdown_timeout();
        if !self.wait_idle(timeout).await {
            tracing::warn!(?timeout, "objects still in flight after the shutdown timeout: rolling them back");
            self.stop.abort();
            if !self.wait_idle(ROLLBACK_GRACE).await {
                tracing::error!("runs did not end in time; the next run records them as interrupted");
            }
        }
        drop(watcher);
        scheduler.abort();
        let _ = listeners.await;
        if let Some(pool) = self.role.pool() {
            pool.ring();
        }
        let _ = worker.join();
        if let Some(pool) = self.role.pool() {
            pool.worker().leave();
        }
        let _ = server.await;
        tracing::info!("stopped");
        Ok(())
    }

    /// The configuration and plugins in force.
    pub(crate) fn generation(&self) -> Arc<Generation> {
        self.generation.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn problems(&self) -> Vec<String> {
        self.problems.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn activity(&self, name: &str) -> Option<Activity> {
        self.active.lock().unwrap_or_else(|p| p.into_inner()).get(name).map(|(activity, _)| *activity)
    }

    /// What every dataflow queued or running here is doing, at one moment.
    pub(crate) fn activities(&self) -> HashMap<String, Activity> {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.iter().map(|(name, (activity, _))| (name.clone(), *activity)).collect()
    }

    pub(crate) fn unrecorded(&self, name: &str) -> Vec<UnrecordedRun> {
        let unrecorded = self.unrecorded.lock().unwrap_or_else(|p| p.into_inner());
        unrecorded.iter().filter(|run| run.dataflow == name).cloned().collect()
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.draining()
    }

    pub(crate) fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// Reads the configuration again and, where it is valid, puts it and its plugins in force; where it is
    /// not, keeps the one in force and reports why (on `/healthz` too).
    pub(crate) fn reload(&self) {
        let old = self.generation();
        let problems = match Config::load(&self.config_path) {
            Err(error) => {
                let problem =
                    format!("the new configuration was refused, the one before keeps running: {error}");
                tracing::error!("{problem}");
                vec![problem]
            }
            Ok(config) => {
                let (before, now) = (&old.config.daemon, &config.daemon);
                if before.listen() != now.listen()
                    || before.max_concurrent_runs() != now.max_concurrent_runs()
                {
                    tracing::warn!(
                        "[daemon] listen and max_concurrent_runs take effect at the next start of the daemon"
                    );
                }
                let (generation, problems) = Generation::load(&self.host, config, Some(&old), old.number + 1);
                for problem in &problems {
                    tracing::error!("{problem}");
                }
                tracing::info!(
                    generation = generation.number,
                    dataflows = generation.config.dataflows.len(),
                    "configuration reloaded"
                );
                *self.generation.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(generation);
                problems
            }
        };
        *self.problems.lock().unwrap_or_else(|p| p.into_inner()) = problems;
        self.changed.notify_waiters();
    }

    /// Queues a run of `name`; it starts when a place among `max_concurrent_runs` is free.
    pub(crate) fn start_run(self: &Arc<Self>, name: &str, trigger: Trigger) -> Result<(), NotStarted> {
        if self.stopping() {
            return Err(NotStarted::Stopping);
        }
        if !self.generation().config.dataflows.contains_key(name) {
            return Err(NotStarted::UnknownDataflow);
        }
        {
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            match active.get(name) {
                // A run of events is not the listing the slot is for: the slot runs after it.
                Some((_, Trigger::Events)) if trigger == Trigger::Schedule => {
                    self.slot_waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string());
                    tracing::info!(dataflow = name, "the slot runs when the run of events ends");
                    return Ok(());
                }
                Some((activity, _)) => return Err(NotStarted::AlreadyActive(*activity)),
                None => active.insert(name.to_string(), (Activity::Queued, trigger)),
            };
        }
        tracing::info!(dataflow = name, ?trigger, "run queued");
        let daemon = self.clone();
        let name = name.to_string();
        self.runtime.spawn(async move {
            let permit = daemon.permits.acquire().await.expect("the semaphore is never closed");
            if !daemon.stopping() {
                daemon.set_activity(&name, Some((Activity::Running, trigger)));
                let runner = daemon.clone();
                let dataflow = name.clone();
                if let Err(panic) = tokio::task::spawn_blocking(move || runner.run_now(&dataflow)).await {
                    tracing::error!(dataflow = name, "the run panicked: {panic}");
                }
            }
            // Ended before the place is given up, so that no two runs ever show as running beside a
            // limit of one.
            daemon.set_activity(&name, None);
            drop(permit);
            daemon.changed.notify_waiters();
        });
        Ok(())
    }

    fn set_activity(&self, name: &str, activity: Option<(Activity, Trigger)>) {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        match activity {
            Some(activity) => active.insert(name.to_string(), activity),
            None => active.remove(name),
        };
    }

    /// Runs `name` on the objects `received` names, now, and deletes the messages of those it settles:
    /// at once, or not at all where the dataflow is busy (here, in another process, or a slot of its
    /// schedule waits), so that the caller keeps the messages hidden and asks again.
    async fn run_events(
        self: Arc<Self>,
        name: &str,
        notifications: Arc<Notifications>,
        received: Arc<Received>,
    ) -> Result<(), events::NotRun> {
        if self.stopping() || !self.generation().config.dataflows.contains_key(name) {
            return Err(events::NotRun::Over);
        }
        {
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            let slot_waiting = self.slot_waiting.lock().unwrap_or_else(|p| p.into_inner());
            if active.contains_key(name) || slot_waiting.contains(name) {
                return Err(events::NotRun::Busy);
            }
            active.insert(name.to_string(), (Activity::Queued, Trigger::Events));
        }
        let permit = self.permits.acquire().await.expect("the semaphore is never closed");
        let mut outcome = Err(events::NotRun::Over);
        if !self.stopping() {
            self.set_activity(name, Some((Activity::Running, Trigger::Events)));
            let (daemon, dataflow) = (self.clone(), name.to_string());
            let run = move || daemon.run_events_now(&dataflow, &notifications, &received);
            outcome = match tokio::task::spawn_blocking(run).await {
                Ok(outcome) => outcome,
                Err(panic) => {
                    tracing::error!(dataflow = name, "the run of events panicked: {panic}");
                    Ok(())
                }
            };
        }
        self.set_activity(name, None);
        drop(permit);
        if self.slot_waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(name) {
            let _ = self.start_run(name, Trigger::Schedule);
        }
        self.changed.notify_waiters();
        outcome
    }

    /// A runner of the generation in force, with this daemon's plugins, stop signal and workers.
    fn runner<'g>(&'g self, generation: &'g Generation) -> Runner<'g> {
        let runner = Runner::new(&generation.config, &self.host, self.runtime.clone())
            .with_plugins(&generation.plugins)
            .with_stop(&self.stop);
        match self.role.pool() {
            Some(pool) => runner.with_workers(pool),
            None => runner,
        }
    }

    /// The run of events, on this thread (a blocking one); busy where another process runs the dataflow.
    fn run_events_now(
        &self,
        name: &str,
        notifications: &Notifications,
        received: &Received,
    ) -> Result<(), events::NotRun> {
        let generation = self.generation();
        let started = SystemTime::now();
        match self.runner(&generation).run_events(
            name,
            notifications,
            received,
            &LogProgress { dataflow: name },
        ) {
            Ok(ran) => {
                ran.run.record_metrics();
                log_run_end(name, &ran.run, "run of events ended", ran.deleted, ran.kept);
                Ok(())
            }
            Err(SyncError::Locked(LockError::Held { .. })) => Err(events::NotRun::Busy),
            Err(error) => {
                self.failed_to_start(&generation.config, name, started, error);
                Ok(())
            }
        }
    }

    /// What the next run of `name` would take, and its first records, as the dashboard shows them (a
    /// Stripe source's tables, for a dataflow that reads Stripe); read on this thread (a blocking one).
    fn preview_now(&self, name: &str) -> Result<serde_json::Value, SyncError> {
        let generation = self.generation();
        let runner = self.runner(&generation);
        if let crate::config::SourceConfig::Stripe(_) = generation.config.dataflow(name)?.source {
            let tables = runner.preview_stripe(name)?;
            let tables: Vec<_> = tables
                .iter()
                .map(|t| json!({ "object": t.object, "table": t.table, "in_stripe": t.in_stripe, "to_list": t.to_list, "rows": t.rows }))
                .collect();
            return Ok(json!({ "tables": tables }));
        }
        let preview = runner.preview(name, PREVIEW_RECORDS)?;
        let objects: Vec<_> = preview
            .plan
            .objects
            .iter()
            .map(|p| {
                json!({
                    "key": p.object.key,
                    "size": p.object.size,
                    "last_modified": humantime::format_rfc3339_seconds(p.object.last_modified).to_string(),
                    "decision": p.decision.as_str(),
                })
            })
            .collect();
        let sample = preview.sample.map(|sample| {
            let records: Vec<serde_json::Value> =
                sample.records.iter().filter_map(|r| serde_json::from_str(r).ok()).collect();
            json!({ "key": sample.key, "records": records, "rejects": sample.rejects, "error": sample.error })
        });
        Ok(json!({ "listed": preview.plan.listed, "objects": objects, "sample": sample }))
    }

    /// Tries the rejected rows of `name` again on this thread (a blocking one), with the generation in
    /// force.
    fn replay_now(&self, name: &str) -> Result<crate::sync::ReplayReport, SyncError> {
        let generation = self.generation();
        let replay = self.runner(&generation).replay_rejects(name, &LogProgress { dataflow: name })?;
        replay.run.record_metrics();
        log_run_end(name, &replay.run, "replay of rejected rows ended", 0, 0);
        Ok(replay)
    }

    /// Runs `name` on this thread (a blocking one) with the generation in force when it starts.
    fn run_now(&self, name: &str) {
        let generation = self.generation();
        let config = &generation.config;
        self.flush_unrecorded(config);
        let started = SystemTime::now();
        match self.runner(&generation).run(name, &LogProgress { dataflow: name }) {
            Ok(report) => {
                report.record_metrics();
                self.optimize_if_due(config, name);
                log_run_end(name, &report, "run ended", 0, 0);
            }
            Err(SyncError::Locked(error @ LockError::Held { .. })) => {
                // Another process runs it now: this slot is that run's.
                tracing::warn!(dataflow = name, "run skipped: {error}");
            }
            Err(error) => self.failed_to_start(config, name, started, error),
        }
    }

    /// Counts, logs and records a run of `name` that could not start.
    fn failed_to_start(&self, config: &Config, name: &str, started: SystemTime, error: SyncError) {
        // Counted as a failed run: its sink or state store was unreachable, say.
        let status = crate::state::RunStatus::Failed.as_str();
        metrics::counter!(crate::metrics::RUNS, "dataflow" => name.to_string(), "status" => status)
            .increment(1);
        tracing::error!(dataflow = name, "run failed: {error}");
        // The lease is taken in the state store: a lock that failed is the store failing.
        let state_unreachable =
            matches!(error, SyncError::State { .. } | SyncError::Locked(LockError::Failed { .. }));
        self.record_failed(config, name, started, error.to_string(), state_unreachable);
    }

    /// Optimizes the dataflow's Delta tables where `[daemon] optimize_every` has passed since this process
    /// last did (or it never did); a failure is logged, and tried again after the next run.
    fn optimize_if_due(&self, config: &Config, name: &str) {
        let Some(every) = config.daemon.optimize_every() else { return };
        let Some(dataflow) = config.dataflows.get(name) else { return };
        if dataflow.sink.kind != crate::config::SinkKind::Tables
            || !matches!(config.sink_database(dataflow), crate::config::SinkUrl::Delta(_))
        {
            return;
        }
        let mut optimized = self.optimized.lock().unwrap_or_else(|p| p.into_inner());
        if optimized.get(name).is_some_and(|at| at.elapsed() < every) {
            return;
        }
        match crate::sync::optimize(config, name) {
            Ok(tables) => {
                for (table, done) in tables {
                    let done = done.unwrap_or_default();
                    tracing::info!(
                        dataflow = name,
                        table,
                        merged = done.files_merged,
                        written = done.files_written,
                        deleted = done.files_deleted,
                        "optimized"
                    );
                }
                optimized.insert(name.to_string(), std::time::Instant::now());
            }
            Err(error) => tracing::warn!(dataflow = name, "optimize failed: {error}"),
        }
    }

    /// Writes a run that failed before it began into the run history, or keeps it until the state store
    /// can take it.
    fn record_failed(
        &self,
        config: &Config,
        name: &str,
        started: SystemTime,
        error: String,
        state_unreachable: bool,
    ) {
        let run = UnrecordedRun { dataflow: name.to_string(), started, ended: SystemTime::now(), error };
        // The store just failed this run: asking it again now would only wait out its busy timeout twice.
        if !state_unreachable && write_failed_run(config, &run).is_ok() {
            return;
        }
        self.unrecorded.lock().unwrap_or_else(|p| p.into_inner()).push(run);
    }

    /// Writes the runs kept for the state store into it, as far as it takes them.
    fn flush_unrecorded(&self, config: &Config) {
        let mut unrecorded = self.unrecorded.lock().unwrap_or_else(|p| p.into_inner());
        let mut kept = Vec::new();
        for run in unrecorded.drain(..) {
            if let Err(error) = write_failed_run(config, &run) {
                tracing::debug!(
                    dataflow = run.dataflow,
                    "the state store does not take a failed run yet: {error}"
                );
                kept.push(run);
            }
        }
        *unrecorded = kept;
    }

    /// Waits until no run is queued or running, at most `timeout`; whether none is.
    async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let loading = self.role.pool().map_or(0, |pool| pool.loading());
            if loading == 0 && self.active.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(IDLE_POLL).await;
        }
    }

    /// Sets each dataflow's last-success gauge from the run history, so `/metrics` has it from the start.
    fn note_last_successes(&self) {
        let generation = self.generation();
        let Ok(Some(mut state)) = StateStore::open_read_only(&generation.config.state_database()) else {
            return;
        };
        for name in generation.config.dataflows.keys() {
            let Ok(runs) = state.runs(name) else { continue };
            let succeeded = runs.iter().find(|run| run.status == crate::state::RunStatus::Succeeded);
            if let Some(ended) = succeeded.and_then(|run| run.ended_at) {
                crate::metrics::last_success(name, ended);
            }
        }
    }

    /// When each dataflow's last run began, from the run history (none where it never ran or the store
    /// cannot be read).
    fn last_run_starts(&self, config: &Config) -> HashMap<String, Timestamp> {
        let mut starts = HashMap::new();
        let Ok(Some(mut state)) = StateStore::open_read_only(&config.state_database()) else { return starts };
        for name in config.dataflows.keys() {
            if let Some(run) = state.runs(name).ok().and_then(|runs| runs.into_iter().next())
                && let Ok(at) = Timestamp::try_from(run.started_at)
            {
                starts.insert(name.clone(), at);
            }
        }
        starts
    }
}

/// The log line of a run that ended; a run of events also says how many of its messages were deleted and
/// kept.
fn log_run_end(name: &str, report: &RunReport, what: &str, deleted: usize, kept: usize) {
    let counts = report.counts;
    tracing::info!(
        dataflow = name,
        run = report.run_id,
        status = report.status.as_str(),
        objects = counts.objects,
        rows = counts.rows,
        rejected = counts.rejected,
        bytes = counts.bytes,
        seconds = report.elapsed.as_secs_f64(),
        error = report.error.as_deref().unwrap_or(""),
        messages_deleted = deleted,
        messages_kept = kept,
        "{what}"
    );
}

fn write_failed_run(config: &Config, run: &UnrecordedRun) -> Result<(), String> {
    let mut state = StateStore::open(&config.state_database()).map_err(|e| e.to_string())?;
    state.record_failed_run(&run.dataflow, run.started, run.ended, &run.error).map_err(|e| e.to_string())?;
    Ok(())
}

/// A run's progress in the log: each object as it ends.
struct LogProgress<'a> {
    dataflow: &'a str,
}

impl Progress for LogProgress<'_> {
    fn object_finished(&self, object: &crate::source::ObjectMeta, report: &ObjectReport) {
        tracing::info!(
            dataflow = self.dataflow,
            object = object.key,
            status = report.status.as_str(),
            rows = report.rows,
            rejected = report.rejected,
            bytes = report.bytes,
            error = report.error.as_deref().unwrap_or(""),
            "object finished"
        );
    }
}

/// Runs `sluice daemon` on a runtime of its own until it is stopped.
pub fn run(config_path: &Path) -> Result<(), DaemonError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let daemon = Daemon::new(config_path, runtime.handle().clone())?;
    let served = runtime.block_on(daemon.serve());
    // A run that did not end within the grace is left to the next one to record as interrupted; the
    // process does not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    served
}
