//! Workers: processes that share the objects of runs through the state store.
//!
//! A run of a dataflow that shares its work (`Config::shares_work`: PostgreSQL state, a PostgreSQL table
//! it appends to) loads its first object itself (which may create the table) and queues the others in
//! the state store's `work` table. Every [`Worker`], in any process pointed at the same state store, claims
//! them one at a time ([`SharedObjects::work`]) and loads each into the sink, fenced by the run's lease
//! token as the run's own loads are; the run waits until none is queued or claimed, then ends as before.
//!
//! A worker's heartbeat renews its claims; a claim it does not hold any more (it expired while the worker
//! was frozen, and another took it over) is lost, and its object stops before its commit. The sink's marker
//! keeps each object's rows once, whichever worker commits it.

use super::load::{DataflowRun, ObjectReport};
use super::member_format::MemberFormats;
use super::{Progress, StopSignal};
use crate::config::{Config, DataflowConfig};
use crate::plugin::{FormatPlugin, TemplatePlugin};
use crate::sink::{TableSink, TableSpec};
use crate::source::Source;
use crate::state::{Claim, Lease, ObjectOutcome, ObjectStatus, StateError, StateStore};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};
use tokio::runtime::Handle;

pub use crate::state::Worker;

/// A worker as a daemon runs it: the worker, how many objects it loads at once, and a bell that a run
/// queuing work rings so that the worker claims at once rather than at its next look.
pub struct WorkerPool {
    worker: Worker,
    max_objects: usize,
    /// Threads loading objects now.
    loading: AtomicUsize,
    bell: (Mutex<bool>, Condvar),
}

impl WorkerPool {
    /// A pool of `max_objects` loads at a time for `worker`.
    pub fn new(worker: Worker, max_objects: usize) -> WorkerPool {
        WorkerPool {
            worker,
            max_objects: max_objects.max(1),
            loading: AtomicUsize::new(0),
            bell: (Mutex::new(false), Condvar::new()),
        }
    }

    /// The worker.
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// How many objects it loads at once (`[daemon] max_concurrent_objects`).
    pub fn max_objects(&self) -> usize {
        self.max_objects
    }

    /// How many of its threads load objects now.
    pub fn loading(&self) -> usize {
        self.loading.load(Ordering::SeqCst)
    }

    /// A thread of the pool began loading.
    pub fn began(&self) {
        self.loading.fetch_add(1, Ordering::SeqCst);
    }

    /// A thread of the pool ended.
    pub fn ended(&self) {
        self.loading.fetch_sub(1, Ordering::SeqCst);
    }

    /// Tells the pool that work was queued.
    pub fn ring(&self) {
        *self.bell.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.bell.1.notify_all();
    }

    /// Waits until the bell rings or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        let rung = self.bell.0.lock().unwrap_or_else(|p| p.into_inner());
        let (mut rung, _) =
            self.bell.1.wait_timeout_while(rung, timeout, |rung| !*rung).unwrap_or_else(|p| p.into_inner());
        *rung = false;
    }
}

/// What loads the shared objects of one dataflow: its plugins, how it reads, and its source. The runner
/// makes it (`SharedObjects::new`, and for a run of its own that shares its objects), from the plugins it
/// loads and the configuration and stop signal it runs with.
pub struct SharedObjects<'r> {
    pub(super) config: &'r Config,
    pub(super) stop: &'r StopSignal,
    pub(super) runtime: &'r Handle,
    pub(super) name: &'r str,
    pub(super) dataflow: &'r DataflowConfig,
    pub(super) plugin: FormatPlugin,
    pub(super) template: Option<TemplatePlugin>,
    pub(super) reading: String,
    pub(super) source: Arc<dyn Source>,
    pub(super) member_formats: MemberFormats<'r>,
}

impl<'r> SharedObjects<'r> {
    /// How the dataflow reads its objects here: a worker claims only objects queued by a run that reads
    /// them the same way (the same plugins, builds and options).
    pub fn reading(&self) -> &str {
        &self.reading
    }

    /// Claims and loads objects of the dataflow (of run `run` alone, where given) one at a time on this
    /// thread, as `worker`, until none is left to claim or the runner is stopping; returns how many it
    /// took. Each object's outcome is recorded with its claim, then in the ledger.
    pub fn work(&self, worker: &Worker, run: Option<i64>, progress: &dyn Progress) -> Result<usize, String> {
        let name = self.name;
        let mut sink: Option<(Box<dyn TableSink>, i64)> = None;
        let mut taken = 0;
        while !self.stop.draining() {
            // The state store's connection is the pool's only between loads: loads in flight hold the
            // sink's, and a connection held across a load would keep a worker beside it waiting.
            let claimed = self
                .state()
                .and_then(|mut state| {
                    state.claim_work(worker.id(), name, &self.reading, run, worker.ttl(), 1)
                })
                .map_err(|e| format!("dataflow `{name}`: claiming objects failed: {e}"))?;
            let Some(claim) = claimed.into_iter().next() else { break };
            taken += 1;
            let lease = worker.hold(&claim);
            progress.object_started(&claim.object);
            let report = self.load(&mut sink, &claim, &lease, progress);
            let outcome = ObjectOutcome {
                status: report.status,
                rows: report.rows,
                rejected: report.rejected,
                bytes: report.bytes,
                error: report.error.as_deref(),
                reader: Some(&self.reading),
                worker: Some(worker.id()),
            };
            // Its load is over: the heartbeat stops watching the claim (which the finish below ends in the
            // store, and the heartbeat would then find gone).
            worker.let_go(&claim);
            // The claim first: a worker whose claim was taken over records nothing, in the ledger either.
            let recorded = self.state().and_then(|mut state| {
                state.fence_with(&lease);
                let held = state.finish_work(&claim, &outcome, report.elapsed)?;
                if held {
                    state.record_object(name, &claim.object, outcome, claim.run_id, SystemTime::now())?;
                }
                Ok(held)
            });
            match recorded {
                Ok(true) => progress.object_finished(&claim.object, &report),
                Ok(false) => tracing::warn!(
                    dataflow = name,
                    object = claim.object.key,
                    worker = worker.id(),
                    "the object's claim was taken over by another worker; its outcome here is not recorded"
                ),
                Err(error) => {
                    return Err(format!(
                        "dataflow `{name}`, object `{}`: its outcome was not recorded: {error}",
                        claim.object.key
                    ));
                }
            }
        }
        Ok(taken)
    }

    fn state(&self) -> Result<StateStore, StateError> {
        StateStore::open(&self.config.state_database())
    }

    /// Loads one claimed object into the sink (opened on first use with the run token it is fenced with).
    /// An object that could not load beside others (two adding one column at once, where the database
    /// gives one up) is tried once more at once.
    fn load(
        &self,
        sink: &mut Option<(Box<dyn TableSink>, i64)>,
        claim: &Claim,
        lease: &Lease,
        progress: &dyn Progress,
    ) -> ObjectReport {
        let run = DataflowRun {
            name: self.name,
            dataflow: self.dataflow,
            reading: self.reading.clone(),
            plugin: &self.plugin,
            member_formats: &self.member_formats,
            template: self.template.as_ref(),
            run_id: claim.run_id,
            progress,
            runtime: self.runtime,
            stop: self.stop,
            lease,
        };
        // Fenced once per run: the sink is the worker's for as long as it claims objects of the dataflow.
        let opened = match sink.take() {
            Some((open, fence)) if fence == claim.fence => Ok((open, false)),
            Some((open, _)) => Ok((open, true)),
            None => crate::sink::open(
                &self.config.sink_database(self.dataflow),
                self.name,
                &TableSpec::of(self.dataflow, self.name),
            )
            .map(|open| (open, true)),
        };
        let fenced = opened.and_then(|(mut open, fence)| {
            if fence {
                open.fence(claim.fence)?;
            }
            Ok(open)
        });
        let mut open = match fenced {
            Ok(open) => open,
            Err(error) => return run.unloaded(&claim.object, error.to_string()),
        };
        let mut report = run.load_object(self.source.as_ref(), open.as_mut(), &claim.object);
        if report.status == ObjectStatus::Pending && !run.halting() {
            report = run.load_object(self.source.as_ref(), open.as_mut(), &claim.object);
        }
        *sink = Some((open, claim.fence));
        report
    }
}
