//! One run per dataflow at a time, across processes and machines: a lease in the state store.
//!
//! A run takes its dataflow's lease (a row of `leases`) for `[state] lease_timeout`, and a thread of the
//! run renews it every sixth of that. Each taking raises the row's `token`, the run's fencing token: every
//! write the run makes to the ledger, and every object it commits to a tables sink, first checks in its own
//! transaction that the token is still the dataflow's newest. So a run that stops renewing (its process
//! frozen, its connections cut) and whose lease another run then takes can commit nothing more, even before
//! it notices; and it notices at its next renewal, within a sixth of the timeout, and stops taking objects.
//!
//! A lease ends when its run lets it go, or when it expires unrenewed (a killed process): only then can
//! another run take it. With SQLite state (one machine), an OS file lock per dataflow beside the database
//! also guards the run; the OS drops it the moment a process dies, so there a killed run's lease is taken
//! over at once rather than when it expires.

use super::renew::{Renewed, keep_renewed};
use super::sql::Sql;
use super::{Database, StateError, StateStore};
use crate::config::DatabaseUrl;
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// A run's hold on its dataflow, as the run checks it: its fencing token, and whether it was lost.
#[derive(Debug)]
pub struct Lease {
    dataflow: String,
    token: i64,
    lost: Mutex<Option<String>>,
}

impl Lease {
    /// The run's fencing token: raised by every taking of the dataflow's lease.
    pub fn token(&self) -> i64 {
        self.token
    }

    /// Why the run no longer holds its lease, once it does not: it must then take no further object.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A hold that is not the dataflow's own lease but fenced with its `token`: a worker's claim on one
    /// object of the run that holds the lease with it. It is lost when the claim is taken over.
    pub fn of_claim(dataflow: &str, token: i64) -> Lease {
        Lease { dataflow: dataflow.to_string(), token, lost: Mutex::new(None) }
    }

    /// Marks the hold lost, for `why`: whoever checks it takes no further step under it.
    pub fn lose(&self, why: String) {
        tracing::error!(dataflow = self.dataflow, token = self.token, "{why}");
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(why);
    }
}

/// Held while a dataflow runs (or is removed, rolled back, retried); dropping it lets the lease go, so the
/// next run need not wait for it to expire.
pub struct RunLock {
    lease: Arc<Lease>,
    /// Dropping the sender tells the renewing thread to let the lease go and end.
    renewer: Option<(Sender<()>, JoinHandle<()>)>,
    /// With SQLite state, the OS file lock, held as long as the lease.
    _file: Option<File>,
}

impl RunLock {
    /// The lease, for the run to check and to fence its writes with.
    pub fn lease(&self) -> &Arc<Lease> {
        &self.lease
    }
}

impl std::fmt::Debug for RunLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RunLock({}, token {})", self.lease.dataflow, self.lease.token)
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Some((stop, renewer)) = self.renewer.take() {
            drop(stop);
            let _ = renewer.join();
        }
    }
}

/// Why a dataflow's run lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("dataflow `{dataflow}` is being run by another process ({holder}); try again when that run ends")]
    Held {
        /// The dataflow.
        dataflow: String,
        /// Who holds it: the host and process id, and when its lease expires unrenewed.
        holder: String,
    },
    /// The lock could not be taken at all.
    #[error("cannot lock dataflow `{dataflow}` ({location}): {message}")]
    Failed {
        /// The dataflow.
        dataflow: String,
        /// The state database.
        location: String,
        /// Why.
        message: String,
    },
}

/// The lock file of `dataflow` for the state database at `state_path`.
fn lock_path(state_path: &Path, dataflow: &str) -> PathBuf {
    let mut folder = state_path.as_os_str().to_owned();
    folder.push(".locks");
    PathBuf::from(folder).join(format!("{dataflow}.lock"))
}

/// This machine's name, as the kernel has it; `None` where it cannot be read.
pub(super) fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|name| name.trim().to_string())
}

/// Who takes a lease now, for the message of a refused run: the process, its host, and since when.
fn holder_now() -> String {
    let host = host_name().unwrap_or_else(|| "this host".to_string());
    format!(
        "pid {} on {host} since {}",
        std::process::id(),
        humantime::format_rfc3339_seconds(SystemTime::now())
    )
}

/// The name of a lease's own PostgreSQL session in `pg_stat_activity`.
pub fn lease_session_name(dataflow: &str) -> String {
    format!("{} lease {dataflow}, pid {}", crate::pg::APPLICATION_NAME, std::process::id())
}

/// Takes the lease of `dataflow` in the state database `state` for `timeout` at a time, and keeps it
/// renewed until the lock is dropped; or says who holds it.
pub fn lock_dataflow(state: &DatabaseUrl, timeout: Duration, dataflow: &str) -> Result<RunLock, LockError> {
    let failed = |message: String| LockError::Failed {
        dataflow: dataflow.to_string(),
        location: state.to_string(),
        message,
    };
    let file = match state {
        DatabaseUrl::Sqlite(state_path) => {
            let path = lock_path(state_path, dataflow);
            let locked = lock_file(&path).map_err(|e| failed(format!("{}: {e}", path.display())))?;
            Some(locked.map_err(|holder| LockError::Held { dataflow: dataflow.to_string(), holder })?)
        }
        DatabaseUrl::Postgres(_) => None,
    };
    let session = lease_session_name(dataflow);
    let mut store = StateStore::open_as(state, Some(&session)).map_err(|e| failed(e.message))?;
    // Where the file lock is held, no other process runs the dataflow: a lease left by a killed one is
    // taken over at once.
    let token = store
        .take_lease(dataflow, &holder_now(), timeout, file.is_some())
        .map_err(|e| failed(e.message))?
        .map_err(|holder| LockError::Held { dataflow: dataflow.to_string(), holder })?;
    let lease = Arc::new(Lease { dataflow: dataflow.to_string(), token, lost: Mutex::new(None) });
    let (stop, stopped) = channel();
    let renewing = (state.clone(), lease.clone());
    let renewer = std::thread::Builder::new()
        .name(format!("lease {dataflow}"))
        .spawn(move || keep_renewed(renewing.0, store, &RunLease(&renewing.1, timeout), timeout, stopped))
        .map_err(|e| failed(format!("cannot start the thread that renews the lease: {e}")))?;
    Ok(RunLock { lease, renewer: Some((stop, renewer)), _file: file })
}

/// A run's lease, as its renewing thread holds it.
struct RunLease<'l>(&'l Lease, Duration);

impl Renewed for RunLease<'_> {
    fn session(&self) -> String {
        lease_session_name(&self.0.dataflow)
    }

    fn what(&self) -> String {
        format!("the run's lease on dataflow `{}`", self.0.dataflow)
    }

    fn renew(&self, store: &mut StateStore) -> Result<bool, StateError> {
        let (lease, timeout) = (self.0, self.1);
        let renewed = store.renew_lease(&lease.dataflow, lease.token, timeout)?;
        if !renewed {
            lease.lose(format!(
                "the run's lease on dataflow `{}` (token {}) was taken over by another run; it stopped taking objects",
                lease.dataflow, lease.token
            ));
        }
        Ok(renewed)
    }

    fn unreachable(&self, error: &StateError, since: Duration) -> bool {
        let (lease, timeout) = (self.0, self.1);
        lease.lose(format!(
            "the run's lease on dataflow `{}` could not be renewed for {}s (lease_timeout {}s), so another run may hold it now; it stopped taking objects. Last error: {error}",
            lease.dataflow,
            since.as_secs(),
            timeout.as_secs()
        ));
        true
    }

    fn release(&self, url: &DatabaseUrl, store: Option<StateStore>) {
        // Where it cannot be let go, the lease expires in its time. A PostgreSQL session that was ended is
        // opened again for it; an SQLite store that is busy is not waited for twice (the file lock, which
        // goes now, is what guards a run there).
        let lease = self.0;
        let released = match store {
            Some(mut open) => open.release_lease(&lease.dataflow, lease.token),
            None => Err(StateError { location: url.to_string(), message: "not connected".into() }),
        };
        if released.is_err() && matches!(url, DatabaseUrl::Postgres(_)) {
            let _ = StateStore::open_as(url, Some(&self.session()))
                .and_then(|mut open| open.release_lease(&lease.dataflow, lease.token));
        }
    }
}

/// Takes the OS lock of the file at `path` (made, with its folder, where missing) and writes into it who
/// holds it now; or, where another process holds it, reads who (`Ok(Err(holder))`). The OS lets it go the
/// moment the process dies.
pub fn lock_file(path: &Path) -> std::io::Result<Result<File, String>> {
    std::fs::create_dir_all(path.parent().expect("a lock file has a folder"))?;
    let mut file = File::options().read(true).write(true).create(true).truncate(false).open(path)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)?;
            file.rewind()?;
            file.write_all(holder_now().as_bytes())?;
            Ok(Ok(file))
        }
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            Ok(Err(holder))
        }
        Err(TryLockError::Error(source)) => Err(source),
    }
}

/// Whether a run of `dataflow` holds its lock now (false where that cannot be told).
pub fn is_running(state: &DatabaseUrl, dataflow: &str) -> bool {
    match state {
        DatabaseUrl::Sqlite(state_path) => {
            let Ok(file) = File::open(lock_path(state_path, dataflow)) else { return false };
            matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock))
        }
        DatabaseUrl::Postgres(_) => StateStore::open_read_only(state)
            .ok()
            .flatten()
            .and_then(|mut store| store.lease_live(dataflow).ok())
            .unwrap_or(false),
    }
}

impl StateStore {
    /// Now, in milliseconds since 1970, on the state store's clock: every process sharing the store reads
    /// leases against the same clock.
    pub(super) fn now_sql(&self) -> &'static str {
        match self.database {
            Database::Sqlite(_) => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
            Database::Postgres(_) => "(extract(epoch FROM clock_timestamp()) * 1000)::bigint",
        }
    }

    /// Takes the lease of `dataflow` for `timeout` (even a live one where `force`), raising its token: the
    /// new token, or who holds the lease.
    fn take_lease(
        &mut self,
        dataflow: &str,
        holder: &str,
        timeout: Duration,
        force: bool,
    ) -> Result<Result<i64, String>, StateError> {
        let now = self.now_sql();
        let ttl = timeout.as_millis() as i64;
        self.transaction(|sql| {
            let taken = sql.query(
                &format!(
                    "INSERT INTO leases (dataflow, token, holder, expires_at) VALUES (?1, 1, ?2, {now} + ?3)
                     ON CONFLICT (dataflow) DO UPDATE SET token = leases.token + 1, holder = excluded.holder,
                     expires_at = excluded.expires_at WHERE leases.expires_at <= {now} OR CAST(?4 AS BIGINT) = 1
                     RETURNING token"
                ),
                &[dataflow.into(), holder.into(), ttl.into(), i64::from(force).into()],
            )?;
            if let Some(row) = taken.first() {
                return Ok(Ok(row.int(0)?));
            }
            let held = sql.query(
                &format!("SELECT holder, (expires_at - {now}) / 1000 FROM leases WHERE dataflow = ?1"),
                &[dataflow.into()],
            )?;
            let row = held.first().ok_or("the lease vanished while it was being taken")?;
            Ok(Err(format!("{}; its lease expires in {}s unless renewed", row.text(0)?, row.int(1)? + 1)))
        })
    }

    /// Renews the lease of `dataflow` for `timeout` more, if `token` still holds it; false if another took it.
    fn renew_lease(&mut self, dataflow: &str, token: i64, timeout: Duration) -> Result<bool, StateError> {
        let now = self.now_sql();
        let renewed = self.database.sql().execute(
            &format!("UPDATE leases SET expires_at = {now} + ?3 WHERE dataflow = ?1 AND token = ?2"),
            &[dataflow.into(), token.into(), (timeout.as_millis() as i64).into()],
        );
        renewed.map(|rows| rows == 1).map_err(|e| self.error(e))
    }

    /// Lets the lease of `dataflow` go, if `token` still holds it: the next run need not wait.
    fn release_lease(&mut self, dataflow: &str, token: i64) -> Result<(), StateError> {
        self.execute(
            "UPDATE leases SET expires_at = 0 WHERE dataflow = ?1 AND token = ?2",
            &[dataflow.into(), token.into()],
        )
    }

    /// Whether a run of `dataflow` is alive: on SQLite, its file lock is held (it goes with the process);
    /// on PostgreSQL, its lease is live.
    pub(super) fn run_alive(&mut self, dataflow: &str) -> Result<bool, StateError> {
        match &self.url {
            DatabaseUrl::Sqlite(_) => Ok(is_running(&self.url, dataflow)),
            DatabaseUrl::Postgres(_) => self.lease_live(dataflow),
        }
    }

    /// Whether a run holds the lease of `dataflow` now.
    fn lease_live(&mut self, dataflow: &str) -> Result<bool, StateError> {
        let now = self.now_sql();
        let live = self.query(
            &format!("SELECT count(*) FROM leases WHERE dataflow = ?1 AND expires_at > {now}"),
            &[dataflow.into()],
            |row| row.int(0),
        )?;
        Ok(live.first().is_some_and(|count| *count > 0))
    }

    /// Fences this store's ledger writes with `lease`: from now on each checks, in its own transaction,
    /// that the lease's token is still its dataflow's newest, and fails (writing nothing) where it is not.
    pub fn fence_with(&mut self, lease: &Lease) {
        self.fence = Some((lease.dataflow.clone(), lease.token));
    }

    /// Where this store's writes are fenced (see [`StateStore::fence_with`]) and another run has taken
    /// the lease since: why, as a fenced write would say it.
    pub fn taken_over(&mut self) -> Result<Option<String>, StateError> {
        let Some((dataflow, token)) = self.fence.clone() else { return Ok(None) };
        let newest =
            self.query("SELECT token FROM leases WHERE dataflow = ?1", &[dataflow.as_str().into()], |row| {
                row.int(0)
            })?;
        let newest = newest.first().copied();
        Ok((newest != Some(token)).then(|| taken_over(&dataflow, token, newest)))
    }

    /// Runs `work` in one transaction, after checking the fence where there is one (see
    /// [`StateStore::fence_with`]). On PostgreSQL the lease's row is share-locked to the commit, so
    /// another run taking the lease waits for this write rather than slipping in before it.
    pub(super) fn fenced_transaction<T>(
        &mut self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, String>,
    ) -> Result<T, StateError> {
        let fence = self.fence.clone();
        let share = match self.database {
            Database::Sqlite(_) => "",
            Database::Postgres(_) => " FOR SHARE",
        };
        self.transaction(|sql| {
            if let Some((dataflow, token)) = &fence {
                let newest = sql.query(
                    &format!("SELECT token FROM leases WHERE dataflow = ?1{share}"),
                    &[dataflow.as_str().into()],
                )?;
                let newest = newest.first().map(|row| row.int(0)).transpose()?;
                if newest != Some(*token) {
                    return Err(taken_over(dataflow, *token, newest));
                }
            }
            work(sql)
        })
    }
}

/// Why a run fenced with `token` records nothing more: `newest` holds the lease of `dataflow`.
fn taken_over(dataflow: &str, token: i64, newest: Option<i64>) -> String {
    format!(
        "the run's lease on dataflow `{dataflow}` (token {token}) was taken over by another run (token {}); this run records nothing more",
        newest.map_or("none".to_string(), |t| t.to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_testkit::TestDatabase;

    const TIMEOUT: Duration = Duration::from_secs(30);

    fn a_second_lock_is_refused_naming_the_holder_until_the_first_is_dropped(state: &DatabaseUrl) {
        let first = lock_dataflow(state, TIMEOUT, "Orders").unwrap();
        assert!(is_running(state, "Orders"));
        let refused = lock_dataflow(state, TIMEOUT, "Orders").unwrap_err().to_string();
        assert!(refused.contains(&format!("pid {}", std::process::id())), "{refused}");
        assert!(lock_dataflow(state, TIMEOUT, "Customers").is_ok(), "other dataflows are not held up");
        let token = first.lease().token();
        drop(first);
        assert!(!is_running(state, "Orders"));
        let second = lock_dataflow(state, TIMEOUT, "Orders").unwrap();
        assert!(second.lease().token() > token, "each taking raises the fencing token");
    }

    #[test]
    fn a_file_lock_is_held_once() {
        let dir = tempfile::tempdir().unwrap();
        a_second_lock_is_refused_naming_the_holder_until_the_first_is_dropped(&DatabaseUrl::Sqlite(
            dir.path().join("state.db"),
        ));
    }

    #[test]
    fn a_lease_is_held_once() {
        let database = TestDatabase::create();
        a_second_lock_is_refused_naming_the_holder_until_the_first_is_dropped(&DatabaseUrl::Postgres(
            database.url().to_string(),
        ));
    }

    /// The lease's own session is ended by the server (a failover, an idle timeout, an operator): the
    /// renewer connects again, the run keeps its lease, and no second run gets in beside it.
    #[test]
    fn a_lease_outlives_its_session_being_killed() {
        let database = TestDatabase::create();
        let state = DatabaseUrl::Postgres(database.url().to_string());
        let timeout = Duration::from_millis(1200);
        let held = lock_dataflow(&state, timeout, "Orders").unwrap();
        let mut admin = postgres::Client::connect(database.url(), postgres::NoTls).unwrap();
        let pattern = format!("{}%", lease_session_name("Orders"));
        for _ in 0..3 {
            let killed = admin
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name LIKE $1 AND datname = current_database()",
                    &[&pattern],
                )
                .unwrap();
            assert!(!killed.is_empty(), "the lease has a session of its own");
            std::thread::sleep(timeout);
            assert!(held.lease().lost().is_none(), "{:?}", held.lease().lost());
            assert!(matches!(lock_dataflow(&state, timeout, "Orders"), Err(LockError::Held { .. })));
        }
    }

    /// A store holding the lease of `Orders` for 300 ms, unrenewed, with its writes fenced by it; and the
    /// lease's token.
    fn holding_briefly(state: &DatabaseUrl) -> (StateStore, i64) {
        let mut store = StateStore::open(state).unwrap();
        let token =
            store.take_lease("Orders", "a frozen run", Duration::from_millis(300), false).unwrap().unwrap();
        store.fence_with(&Lease { dataflow: "Orders".into(), token, lost: Mutex::new(None) });
        (store, token)
    }

    /// A run that stops renewing (its process frozen) loses its lease when it expires: another run takes it
    /// with a higher token, and every ledger write fenced with the old token is refused.
    #[test]
    fn an_expired_lease_is_taken_over_and_fences_out_its_old_holder() {
        let database = TestDatabase::create();
        let state = DatabaseUrl::Postgres(database.url().to_string());
        let (mut old, token) = holding_briefly(&state);
        old.fenced_transaction(|_| Ok(())).expect("the holder writes while it holds the lease");
        assert!(matches!(lock_dataflow(&state, TIMEOUT, "Orders"), Err(LockError::Held { .. })));
        std::thread::sleep(Duration::from_millis(400));
        let new = lock_dataflow(&state, TIMEOUT, "Orders").unwrap();
        assert_eq!(new.lease().token(), token + 1);
        let refused = old.fenced_transaction(|_| Ok(())).unwrap_err().to_string();
        assert!(refused.contains("taken over by another run"), "{refused}");
        assert!(old.taken_over().unwrap().is_some_and(|why| refused.contains(&why)), "{refused}");
        assert_eq!(new_store_taken_over(&state, &new), None, "the new holder's lease is its own");
        // The old holder's renewal finds the lease gone.
        assert!(!old.renew_lease("Orders", token, TIMEOUT).unwrap());
    }

    /// What [`StateStore::taken_over`] says on a store fenced with `held`'s lease.
    fn new_store_taken_over(state: &DatabaseUrl, held: &RunLock) -> Option<String> {
        let mut store = StateStore::open(state).unwrap();
        store.fence_with(held.lease());
        store.taken_over().unwrap()
    }

    /// A run frozen in the middle of a ledger write holds the lease's row share-locked. Once its lease has
    /// expired, another run must still get it: the server ends the frozen transaction's session, where it
    /// would otherwise hold every later run of the dataflow for as long as the process is stopped.
    #[test]
    fn a_run_frozen_inside_a_ledger_write_does_not_hold_up_the_run_taking_its_lease_over() {
        let database = TestDatabase::create();
        let state = DatabaseUrl::Postgres(database.url().to_string());
        let (mut old, token) = holding_briefly(&state);
        let (inside, frozen_at) = std::sync::mpsc::channel();
        let frozen = std::thread::spawn(move || {
            old.fenced_transaction(|_| {
                inside.send(std::time::Instant::now()).unwrap();
                std::thread::sleep(crate::state::sql::FROZEN_AFTER * 2);
                Ok(())
            })
        });
        let frozen_at = frozen_at.recv().unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let new = lock_dataflow(&state, TIMEOUT, "Orders").unwrap();
        assert_eq!(new.lease().token(), token + 1);
        let waited = frozen_at.elapsed();
        assert!(waited < crate::state::sql::FROZEN_AFTER * 2, "the takeover waited {waited:?}");
        let ended = frozen.join().unwrap().unwrap_err().to_string();
        assert!(ended.contains("closed"), "the frozen write was ended: {ended}");
    }
}
