//! Work that many workers share: the objects of a run, one row each in `work`, claimed one at a time.
//!
//! The run that holds its dataflow's lease plans and queues the objects ([`StateStore::queue_work`]);
//! every worker (that run too) claims them with `FOR UPDATE SKIP LOCKED`, so no two claim one object and
//! none waits for another's claim. A claim is a lease on the state store's clock, whose token each claim
//! raises: a worker renews its claims with its heartbeat ([`StateStore::heartbeat`]), and a worker that
//! dies stops renewing, so its claims expire and another worker claims the objects again. An outcome is
//! recorded only with the claim's token ([`StateStore::finish_work`]): a worker whose claim was taken
//! over records nothing. The sink's marker keeps the rows of each object once whoever commits it.
//!
//! An object whose claims expire [`MAX_ATTEMPTS`] times (a file that kills every worker that reads it)
//! is given up as pending, with the reason, rather than handed to the next worker.

use super::renew::{Renewed, keep_renewed};
use super::sql::Row;
use super::{Database, Lease, ObjectOutcome, ObjectStatus, StateError, StateStore};
use crate::config::DatabaseUrl;
use crate::env::redact_stripe_keys;
use crate::object::ObjectMeta;
use crate::time::{from_millis, millis};
use std::collections::HashMap;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// The PostgreSQL notification channel on which a run says it queued work; its payload is the dataflow.
pub const WORK_CHANNEL: &str = "sluice_work";

/// Claims of one object that may expire before it is given up.
pub const MAX_ATTEMPTS: i64 = 3;

/// Workers whose heartbeat stopped this long ago are forgotten when a worker starts.
const FORGET_WORKERS_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A worker: one process that loads shared objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerIdentity {
    /// Unique across processes and restarts: host, process id and start time.
    pub id: String,
    /// The machine it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: u32,
}

impl WorkerIdentity {
    /// This process, as a worker.
    pub fn of_this_process() -> WorkerIdentity {
        let host = super::lease::host_name().unwrap_or_else(|| "localhost".to_string());
        let pid = std::process::id();
        let started = millis(SystemTime::now());
        WorkerIdentity { id: format!("{host}:{pid}:{started:x}"), host, pid }
    }
}

/// A claim as the heartbeat knows it: run, key, ETag and claim token.
type ClaimKey = (i64, String, String, i64);

fn key_of(claim: &Claim) -> ClaimKey {
    (claim.run_id, claim.object.key.clone(), claim.object.etag.clone(), claim.claim)
}

/// This process as a worker: registered in the state store, with a heartbeat that renews its claims
/// every sixth of `[state] lease_timeout`, on a session of its own (so that it never waits for the pool the
/// worker's loads hold). Dropped, it lets its claims go and leaves the list of workers.
pub struct Worker {
    identity: WorkerIdentity,
    ttl: Duration,
    /// The claims it loads now, each with the lease its load checks.
    held: Arc<Mutex<HashMap<ClaimKey, Arc<Lease>>>>,
    heart: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
}

impl Worker {
    /// Registers this process as a worker in the state store at `state`; its claims last `ttl` unrenewed.
    pub fn start(state: &DatabaseUrl, ttl: Duration) -> Result<Worker, StateError> {
        let identity = WorkerIdentity::of_this_process();
        let mut store = StateStore::open_as(state, Some(&heartbeat_session(&identity.id)))?;
        store.register_worker(&identity)?;
        let held: Arc<Mutex<HashMap<ClaimKey, Arc<Lease>>>> = Arc::default();
        let (stop, stopped) = channel();
        let heartbeat = Heartbeat { id: identity.id.clone(), held: held.clone(), ttl };
        let url = state.clone();
        let heart = std::thread::Builder::new()
            .name("worker heartbeat".into())
            .spawn(move || keep_renewed(url, store, &heartbeat, ttl, stopped))
            .map_err(|e| StateError {
                location: state.to_string(),
                message: format!("cannot start the worker's heartbeat: {e}"),
            })?;
        Ok(Worker { identity, ttl, held, heart: Mutex::new(Some((stop, heart))) })
    }

    /// Its id in the state store.
    pub fn id(&self) -> &str {
        &self.identity.id
    }

    /// How long its claims last unrenewed.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Watches `claim` while its object loads: the lease returned is lost when the heartbeat finds the
    /// claim gone.
    pub fn hold(&self, claim: &Claim) -> Arc<Lease> {
        let lease = Arc::new(Lease::of_claim(&claim.dataflow, claim.fence));
        self.held.lock().unwrap_or_else(|p| p.into_inner()).insert(key_of(claim), lease.clone());
        lease
    }

    /// Stops watching `claim`: its load is over.
    pub fn let_go(&self, claim: &Claim) {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).remove(&key_of(claim));
    }

    /// Stops the heartbeat and leaves the list of workers, letting go of the claims still held (other
    /// workers take their objects at once). Dropping the worker does the same.
    pub fn leave(&self) {
        let heart = self.heart.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((stop, heart)) = heart {
            drop(stop);
            let _ = heart.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.leave();
    }
}

/// The name of a worker's heartbeat session in `pg_stat_activity`.
fn heartbeat_session(worker: &str) -> String {
    format!("{} worker {worker}", crate::pg::APPLICATION_NAME)
}

/// A worker's claims, as its heartbeat renews them.
struct Heartbeat {
    id: String,
    held: Arc<Mutex<HashMap<ClaimKey, Arc<Lease>>>>,
    ttl: Duration,
}

impl Renewed for Heartbeat {
    fn session(&self) -> String {
        heartbeat_session(&self.id)
    }

    fn what(&self) -> String {
        format!("worker {}'s claims", self.id)
    }

    /// Renews the claims, losing each that the store no longer has as this worker's. Only claims held
    /// before the heartbeat asks can be missing from its answer: one made while it asks is the worker's
    /// all the same.
    fn renew(&self, store: &mut StateStore) -> Result<bool, StateError> {
        let asked: Vec<ClaimKey> =
            self.held.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        let kept = store.heartbeat(&self.id, self.ttl)?;
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let lost = held.iter().filter(|(claim, _)| asked.contains(claim) && !kept.contains(claim));
        for (claim, lease) in lost.filter(|(_, lease)| lease.lost().is_none()) {
            lease.lose(format!(
                "worker {}'s claim on object `{}` (claim {}) expired before it was renewed, so another worker may hold it now; it stopped loading it",
                self.id, claim.1, claim.3
            ));
        }
        Ok(true)
    }

    /// Loses every claim, and goes on trying: the worker lives on, and claims again once the store answers.
    fn unreachable(&self, error: &StateError, since: Duration) -> bool {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        for lease in held.values().filter(|lease| lease.lost().is_none()) {
            lease.lose(format!(
                "worker {} could not renew its claims for {}s, so another worker may hold them now; it stopped loading. Last error: {error}",
                self.id,
                since.as_secs()
            ));
        }
        false
    }

    fn release(&self, url: &DatabaseUrl, store: Option<StateStore>) {
        let unregistered = match store {
            Some(mut open) => open.unregister_worker(&self.id),
            None => StateStore::open_as(url, Some(&self.session()))
                .and_then(|mut open| open.unregister_worker(&self.id)),
        };
        if let Err(error) = unregistered {
            tracing::warn!(worker = self.id, "the worker's claims expire in their time: {error}");
        }
    }
}

/// A worker as the state store has it, with what it loads now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerRecord {
    /// Its id ([`WorkerIdentity::id`]).
    pub id: String,
    /// Its machine.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it started.
    pub started_at: SystemTime,
    /// Its last heartbeat.
    pub heartbeat_at: SystemTime,
    /// How long ago that was, on the state store's clock.
    pub heartbeat_age: Duration,
    /// The objects it holds claims on now, as (dataflow, key).
    pub loading: Vec<(String, String)>,
}

/// An object a worker claimed: what it loads, under which run, fence and claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The run that queued it.
    pub run_id: i64,
    /// Its dataflow.
    pub dataflow: String,
    /// The object.
    pub object: ObjectMeta,
    /// The run's fencing token: the sink's commits and the ledger's writes check it.
    pub fence: i64,
    /// This claim's token: raised by every claim of the object.
    pub claim: i64,
    /// How many claims of it there have been, this one included.
    pub attempts: i64,
}

/// How a run's shared objects stand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkProgress {
    /// Waiting for a worker.
    pub queued: u64,
    /// Claimed by a worker now.
    pub loading: u64,
    /// Ended (loaded, failed, or left pending).
    pub done: u64,
    /// Workers holding claims of the run now.
    pub workers: u64,
}

impl WorkProgress {
    /// Whether no object of the run waits or loads.
    pub fn settled(&self) -> bool {
        self.queued == 0 && self.loading == 0
    }
}

/// A shared object's outcome as the worker that claimed it recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkOutcome {
    /// The object.
    pub object: ObjectMeta,
    /// How it ended; `None` while it is queued or claimed.
    pub status: Option<ObjectStatus>,
    /// The worker that claimed it last.
    pub worker: Option<String>,
    /// Rows loaded from it.
    pub rows: u64,
    /// Rows of it refused.
    pub rejected: u64,
    /// Bytes read from the source.
    pub bytes: u64,
    /// How long its load took.
    pub elapsed: Duration,
    /// Why it did not load.
    pub error: Option<String>,
}

impl StateStore {
    /// Registers `worker` with a heartbeat now, forgetting workers silent for a day.
    pub fn register_worker(&mut self, worker: &WorkerIdentity) -> Result<(), StateError> {
        let now = self.now_sql();
        let forget = FORGET_WORKERS_AFTER.as_millis() as i64;
        self.transaction(|sql| {
            sql.execute(&format!("DELETE FROM workers WHERE heartbeat_at < {now} - ?1"), &[forget.into()])?;
            sql.execute(
                &format!(
                    "INSERT INTO workers (id, host, pid, started_at, heartbeat_at) VALUES (?1, ?2, ?3, {now}, {now})
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at"
                ),
                &[worker.id.as_str().into(), worker.host.as_str().into(), i64::from(worker.pid).into()],
            )
            .map(drop)
        })
    }

    /// Takes `worker` off the list of workers (it stops), letting go of its claims so that others take
    /// its objects at once rather than when the claims expire.
    pub fn unregister_worker(&mut self, worker: &str) -> Result<(), StateError> {
        self.transaction(|sql| {
            sql.execute(
                "UPDATE work SET status = 'queued', expires_at = 0 WHERE worker = ?1 AND status = 'claimed'",
                &[worker.into()],
            )?;
            sql.execute("DELETE FROM workers WHERE id = ?1", &[worker.into()]).map(drop)
        })
    }

    /// The worker's heartbeat: renews its claims for `ttl` more and returns those it still holds, as
    /// (run, key, etag, claim token). A claim missing from them was taken over: its object must not commit.
    pub fn heartbeat(
        &mut self,
        worker: &str,
        ttl: Duration,
    ) -> Result<Vec<(i64, String, String, i64)>, StateError> {
        let now = self.now_sql();
        let ttl = ttl.as_millis() as i64;
        self.transaction(|sql| {
            sql.execute(&format!("UPDATE workers SET heartbeat_at = {now} WHERE id = ?1"), &[worker.into()])?;
            let held = sql.query(
                &format!(
                    "UPDATE work SET expires_at = {now} + ?2 WHERE worker = ?1 AND status = 'claimed'
                     AND expires_at > {now} RETURNING run_id, key, etag, claim"
                ),
                &[worker.into(), ttl.into()],
            )?;
            held.iter().map(|row| Ok((row.int(0)?, row.text(1)?, row.text(2)?, row.int(3)?))).collect()
        })
    }

    /// Queues `objects` of run `run_id` for workers: read as `reading` says, fenced with `fence` (the run's
    /// lease token). On PostgreSQL the commit notifies [`WORK_CHANNEL`], where workers listen.
    pub fn queue_work(
        &mut self,
        dataflow: &str,
        run_id: i64,
        fence: i64,
        reading: &str,
        objects: &[&ObjectMeta],
    ) -> Result<(), StateError> {
        let postgres = matches!(self.database, Database::Postgres(_));
        self.fenced_transaction(|sql| {
            if postgres {
                sql.execute(&format!("SELECT pg_notify('{WORK_CHANNEL}', ?1)"), &[dataflow.into()])?;
            }
            // What a run that died left queued is planned again by this one.
            sql.execute("DELETE FROM work WHERE dataflow = ?1 AND run_id <> ?2", &[dataflow.into(), run_id.into()])?;
            for object in objects {
                sql.execute(
                    "INSERT INTO work (run_id, dataflow, key, etag, size, last_modified, fence, reading, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued')",
                    &[
                        run_id.into(),
                        dataflow.into(),
                        object.key.as_str().into(),
                        object.etag.as_str().into(),
                        (object.size as i64).into(),
                        millis(object.last_modified).into(),
                        fence.into(),
                        reading.into(),
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// Claims up to `limit` objects of `dataflow` read as `reading` (of run `run_id` alone, where given)
    /// for `worker`, for `ttl`: queued ones, and ones whose claim expired. Objects whose claims expired
    /// [`MAX_ATTEMPTS`] times are given up first (see the module's doc).
    pub fn claim_work(
        &mut self,
        worker: &str,
        dataflow: &str,
        reading: &str,
        run_id: Option<i64>,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, StateError> {
        let now = self.now_sql();
        let skip_locked = match self.database {
            Database::Sqlite(_) => "",
            Database::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        let run = run_id.unwrap_or(-1);
        let args = [dataflow.into(), reading.into(), run.into()];
        // Only objects of the run that holds the dataflow's lease now: a run that died leaves its queue to
        // the next, which plans its objects again.
        let of_this = "dataflow = ?1 AND reading = ?2 AND (CAST(?3 AS BIGINT) = -1 OR run_id = ?3)
            AND fence = (SELECT token FROM leases WHERE leases.dataflow = work.dataflow)";
        self.transaction(|sql| {
            sql.execute(
                &format!(
                    "UPDATE work SET status = 'pending', error = 'dataflow `' || dataflow || '`, object `' || key
                     || '`: its claim expired {MAX_ATTEMPTS} times (the workers that held it stopped or froze before it committed); it is left for the next run'
                     WHERE {of_this} AND status = 'claimed' AND expires_at <= {now} AND attempts >= {MAX_ATTEMPTS}"
                ),
                &args,
            )?;
            let claimed = sql.query(
                &format!(
                    "UPDATE work SET status = 'claimed', worker = ?4, claim = claim + 1,
                     expires_at = {now} + ?5, attempts = attempts + 1
                     WHERE (run_id, key, etag) IN (
                         SELECT run_id, key, etag FROM work WHERE {of_this}
                         AND (status = 'queued' OR (status = 'claimed' AND expires_at <= {now}))
                         ORDER BY run_id, last_modified, key LIMIT ?6{skip_locked})
                     RETURNING run_id, key, etag, size, last_modified, fence, claim, attempts"
                ),
                &[
                    args[0],
                    args[1],
                    args[2],
                    worker.into(),
                    (ttl.as_millis() as i64).into(),
                    (limit as i64).into(),
                ],
            )?;
            claimed.iter().map(|row| claim_of(dataflow, row)).collect()
        })
    }

    /// How many objects of `dataflow` read as `reading` wait for a worker now (queued, or claimed by a
    /// worker whose claim expired), in the run that holds the dataflow's lease.
    pub fn claimable_work(&mut self, dataflow: &str, reading: &str) -> Result<u64, StateError> {
        let now = self.now_sql();
        let count = self.query(
            &format!(
                "SELECT count(*) FROM work WHERE dataflow = ?1 AND reading = ?2
                 AND fence = (SELECT token FROM leases WHERE leases.dataflow = work.dataflow)
                 AND (status = 'queued' OR (status = 'claimed' AND expires_at <= {now}))"
            ),
            &[dataflow.into(), reading.into()],
            |row| row.int(0),
        )?;
        Ok(count.first().copied().unwrap_or(0) as u64)
    }

    /// Records how a claimed object ended (`outcome`, after `elapsed`), if `claim` still holds it: false
    /// (recording nothing) where the claim was taken over by another worker.
    pub fn finish_work(
        &mut self,
        claim: &Claim,
        outcome: &ObjectOutcome<'_>,
        elapsed: Duration,
    ) -> Result<bool, StateError> {
        let error = outcome.error.map(redact_stripe_keys);
        let finished = self.database.sql().execute(
            "UPDATE work SET status = ?5, expires_at = 0, rows = ?6, rejected = ?7, bytes = ?8, elapsed_ms = ?9,
             error = ?10 WHERE run_id = ?1 AND key = ?2 AND etag = ?3 AND claim = ?4 AND status = 'claimed'",
            &[
                claim.run_id.into(),
                claim.object.key.as_str().into(),
                claim.object.etag.as_str().into(),
                claim.claim.into(),
                outcome.status.as_str().into(),
                (outcome.rows as i64).into(),
                (outcome.rejected as i64).into(),
                (outcome.bytes as i64).into(),
                (elapsed.as_millis() as i64).into(),
                error.as_deref().into(),
            ],
        );
        finished.map(|rows| rows == 1).map_err(|e| self.error(e))
    }

    /// Gives up the run's objects no worker claimed yet (the run was asked to stop): they are left pending,
    /// for the next run.
    pub fn cancel_queued_work(&mut self, run_id: i64) -> Result<u64, StateError> {
        let cancelled = self.database.sql().execute(
            "UPDATE work SET status = 'pending' WHERE run_id = ?1 AND status = 'queued'",
            &[run_id.into()],
        );
        cancelled.map_err(|e| self.error(e))
    }

    /// How run `run_id`'s shared objects stand now.
    pub fn work_progress(&mut self, run_id: i64) -> Result<WorkProgress, StateError> {
        let now = self.now_sql();
        let rows = self.query(
            &format!(
                "SELECT
                     coalesce(sum(CASE WHEN status = 'queued'
                         OR (status = 'claimed' AND expires_at <= {now}) THEN 1 ELSE 0 END), 0),
                     coalesce(sum(CASE WHEN status = 'claimed' AND expires_at > {now} THEN 1 ELSE 0 END), 0),
                     coalesce(sum(CASE WHEN status IN ('queued', 'claimed') THEN 0 ELSE 1 END), 0),
                     count(DISTINCT CASE WHEN status = 'claimed' AND expires_at > {now} THEN worker END)
                 FROM work WHERE run_id = ?1"
            ),
            &[run_id.into()],
            |row| {
                Ok(WorkProgress {
                    queued: row.int(0)? as u64,
                    loading: row.int(1)? as u64,
                    done: row.int(2)? as u64,
                    workers: row.int(3)? as u64,
                })
            },
        )?;
        Ok(rows.into_iter().next().unwrap_or_default())
    }

    /// Each of run `run_id`'s shared objects, with how it ended and who claimed it last.
    pub fn run_work(&mut self, run_id: i64) -> Result<Vec<WorkOutcome>, StateError> {
        self.query(
            "SELECT key, etag, size, last_modified, status, worker, rows, rejected, bytes, elapsed_ms, error
             FROM work WHERE run_id = ?1 ORDER BY last_modified, key",
            &[run_id.into()],
            |row| {
                let status = row.text(4)?;
                Ok(WorkOutcome {
                    object: ObjectMeta {
                        key: row.text(0)?,
                        etag: row.text(1)?,
                        size: row.int(2)? as u64,
                        last_modified: from_millis(row.int(3)?),
                    },
                    status: (status != "queued" && status != "claimed").then(|| ObjectStatus::parse(&status)),
                    worker: row.opt_text(5)?,
                    rows: row.int(6)? as u64,
                    rejected: row.int(7)? as u64,
                    bytes: row.int(8)? as u64,
                    elapsed: Duration::from_millis(row.int(9)?.max(0) as u64),
                    error: row.opt_text(10)?,
                })
            },
        )
    }

    /// Forgets run `run_id`'s shared objects, once the run has ended and recorded them.
    pub fn forget_work(&mut self, run_id: i64) -> Result<(), StateError> {
        self.execute("DELETE FROM work WHERE run_id = ?1", &[run_id.into()])
    }

    /// The workers, newest heartbeat first, with the objects each holds claims on now.
    pub fn workers(&mut self) -> Result<Vec<WorkerRecord>, StateError> {
        let now = self.now_sql();
        let mut workers = self.query(
            &format!(
                "SELECT id, host, pid, started_at, heartbeat_at, {now} - heartbeat_at FROM workers
                 ORDER BY heartbeat_at DESC, id"
            ),
            &[],
            |row| {
                Ok(WorkerRecord {
                    id: row.text(0)?,
                    host: row.text(1)?,
                    pid: row.int(2)? as u32,
                    started_at: from_millis(row.int(3)?),
                    heartbeat_at: from_millis(row.int(4)?),
                    heartbeat_age: Duration::from_millis(row.int(5)?.max(0) as u64),
                    loading: Vec::new(),
                })
            },
        )?;
        let claims = self.query(
            &format!(
                "SELECT worker, dataflow, key FROM work WHERE status = 'claimed' AND expires_at > {now}
                 ORDER BY dataflow, key"
            ),
            &[],
            |row| Ok((row.text(0)?, row.text(1)?, row.text(2)?)),
        )?;
        for (worker, dataflow, key) in claims {
            if let Some(record) = workers.iter_mut().find(|w| w.id == worker) {
                record.loading.push((dataflow, key));
            }
        }
        Ok(workers)
    }
}

fn claim_of(dataflow: &str, row: &Row) -> Result<Claim, String> {
    Ok(Claim {
        run_id: row.int(0)?,
        dataflow: dataflow.to_string(),
        object: ObjectMeta {
            key: row.text(1)?,
            etag: row.text(2)?,
            size: row.int(3)? as u64,
            last_modified: from_millis(row.int(4)?),
        },
        fence: row.int(5)?,
        claim: row.int(6)?,
        attempts: row.int(7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseUrl;
    use crate::state::sql::Sql;
    use sluice_testkit::TestDatabase;

    fn object(key: &str) -> ObjectMeta {
        ObjectMeta { key: key.into(), etag: format!("\"{key}\""), size: 10, last_modified: SystemTime::now() }
    }

    const TTL: Duration = Duration::from_secs(30);

    const LOADED: ObjectOutcome<'static> = ObjectOutcome {
        status: ObjectStatus::Loaded,
        rows: 1,
        rejected: 0,
        bytes: 10,
        error: None,
        reader: None,
        worker: None,
    };

    /// A run of `Orders` holds its lease with `token`.
    fn hold_lease(store: &mut StateStore, token: i64) {
        store
            .execute(
                "INSERT INTO leases (dataflow, token, holder, expires_at) VALUES ('Orders', ?1, 'a run', 0)",
                &[token.into()],
            )
            .unwrap();
    }

    /// Every claim expires now, as if its worker had stopped renewing it.
    fn expire_claims(sql: &mut dyn Sql) -> Result<u64, String> {
        sql.execute("UPDATE work SET expires_at = 0 WHERE status = 'claimed'", &[])
    }

    /// Two workers claiming at once each get objects of their own; a worker that stops renewing loses its
    /// claims to the other, and its outcome is then refused; an object whose claims keep expiring is
    /// given up.
    fn claims_are_exclusive_expire_and_fence(url: &DatabaseUrl) {
        let mut store = StateStore::open(url).unwrap();
        let objects: Vec<ObjectMeta> = (0..5).map(|i| object(&format!("o{i}.csv"))).collect();
        let refs: Vec<&ObjectMeta> = objects.iter().collect();
        let run = store.begin_run("Orders", SystemTime::now()).unwrap();
        hold_lease(&mut store, 7);
        store.queue_work("Orders", run, 7, "r1", &refs).unwrap();
        let (a, b) =
            (WorkerIdentity::of_this_process(), WorkerIdentity { id: "b".into(), host: "h".into(), pid: 2 });
        store.register_worker(&a).unwrap();
        store.register_worker(&b).unwrap();

        assert!(store.claim_work(&a.id, "Orders", "another reading", None, TTL, 5).unwrap().is_empty());
        let first = store.claim_work(&a.id, "Orders", "r1", Some(run), TTL, 2).unwrap();
        let second = store.claim_work(&b.id, "Orders", "r1", None, TTL, 2).unwrap();
        assert_eq!(first.len() + second.len(), 4);
        assert!(
            first.iter().all(|c| !second.iter().any(|d| d.object == c.object)),
            "no object claimed twice"
        );
        assert!(first.iter().all(|c| c.fence == 7 && c.claim == 1));
        assert_eq!(store.claimable_work("Orders", "r1").unwrap(), 1);
        assert_eq!(
            store.work_progress(run).unwrap(),
            WorkProgress { queued: 1, loading: 4, done: 0, workers: 2 }
        );
        let workers = store.workers().unwrap();
        assert_eq!(workers.iter().map(|w| w.loading.len()).sum::<usize>(), 4);

        // a's claims expire (it stopped renewing); b takes them over with a higher claim token.
        assert!(store.finish_work(&first[0], &LOADED, Duration::ZERO).unwrap(), "a holds it until then");
        store.database.transaction(expire_claims).unwrap();
        assert!(store.heartbeat(&a.id, TTL).unwrap().is_empty(), "a's claims are gone");
        let taken = store.claim_work(&b.id, "Orders", "r1", None, TTL, 10).unwrap();
        assert_eq!(taken.len(), 4, "a's unfinished claim, b's own expired two, the queued one: {taken:?}");
        let over = taken.iter().find(|c| c.object == first[1].object).unwrap();
        assert_eq!(over.claim, 2);
        assert!(
            !store.finish_work(&first[1], &LOADED, Duration::ZERO).unwrap(),
            "a's stale claim records nothing"
        );
        assert!(store.finish_work(over, &LOADED, Duration::ZERO).unwrap());
        assert_eq!(store.heartbeat(&b.id, TTL).unwrap().len(), 3);

        // The others' claims keep expiring: given up after MAX_ATTEMPTS.
        for _ in 0..MAX_ATTEMPTS {
            store.database.transaction(expire_claims).unwrap();
            store.claim_work(&a.id, "Orders", "r1", None, TTL, 10).unwrap();
        }
        store.database.transaction(expire_claims).unwrap();
        let left = store.claim_work(&a.id, "Orders", "r1", None, TTL, 10).unwrap();
        assert!(left.iter().all(|c| c.attempts <= MAX_ATTEMPTS), "{left:?}");
        let given_up = store.run_work(run).unwrap();
        assert!(
            given_up.iter().any(|w| w.status == Some(ObjectStatus::Pending)
                && w.error.as_deref().is_some_and(|e| e.contains("its claim expired 3 times"))),
            "{given_up:?}"
        );

        // A newer run took the lease: what the old run left queued is not claimed under the old fence.
        store.execute("UPDATE leases SET token = 8", &[]).unwrap();
        store.execute("UPDATE work SET status = 'queued' WHERE status = 'pending'", &[]).unwrap();
        assert!(store.claim_work(&a.id, "Orders", "r1", None, TTL, 10).unwrap().is_empty());

        store.unregister_worker(&a.id).unwrap();
        assert!(store.workers().unwrap().iter().all(|w| w.id != a.id));
        store.forget_work(run).unwrap();
        assert!(store.run_work(run).unwrap().is_empty());
    }

    #[test]
    fn claims_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        claims_are_exclusive_expire_and_fence(&DatabaseUrl::Sqlite(dir.path().join("state.db")));
    }

    #[test]
    fn claims_on_postgres() {
        let database = TestDatabase::create();
        claims_are_exclusive_expire_and_fence(&DatabaseUrl::Postgres(database.url().to_string()));
    }

    /// Two sessions claiming at the same moment on PostgreSQL never take the same object, and neither
    /// waits for the other's claim: `SKIP LOCKED`.
    #[test]
    fn concurrent_claims_on_postgres_take_each_object_once() {
        let database = TestDatabase::create();
        let url = DatabaseUrl::Postgres(database.url().to_string());
        let objects: Vec<ObjectMeta> = (0..200).map(|i| object(&format!("o{i:03}.csv"))).collect();
        let mut store = StateStore::open(&url).unwrap();
        let run = store.begin_run("Orders", SystemTime::now()).unwrap();
        hold_lease(&mut store, 1);
        store.queue_work("Orders", run, 1, "r", &objects.iter().collect::<Vec<_>>()).unwrap();
        let claimed: Vec<Vec<String>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|w| {
                    let url = url.clone();
                    scope.spawn(move || {
                        let mut store = StateStore::open(&url).unwrap();
                        let mut mine = Vec::new();
                        loop {
                            let got =
                                store.claim_work(&format!("w{w}"), "Orders", "r", None, TTL, 3).unwrap();
                            if got.is_empty() {
                                return mine;
                            }
                            mine.extend(got.into_iter().map(|c| c.object.key));
                        }
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let mut all: Vec<&String> = claimed.iter().flatten().collect();
        assert_eq!(all.len(), 200);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 200, "each object claimed once");
        assert!(claimed.iter().filter(|c| !c.is_empty()).count() >= 2, "the claims were shared");
    }
}
