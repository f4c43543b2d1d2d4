//! One run per dataflow at a time, across processes (and, on PostgreSQL, across machines).
//!
//! With SQLite state, an OS file lock per dataflow in a folder beside the state database; with PostgreSQL
//! state, a session advisory lock held on a connection of its own. Either way the lock goes when the
//! process ends, however it ends (the OS drops the file lock; the server ends the session), so a killed
//! run leaves no stale lock behind.

use crate::config::DatabaseUrl;
use crate::pg;
use sha2::{Digest, Sha256};
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The first key of Sluice's advisory locks; the second is the dataflow's.
const ADVISORY_CLASS: i32 = 0x736c_7569; // "slui"

/// Held while a dataflow runs; dropping it lets the next run in.
pub struct RunLock {
    _held: Held,
}

impl std::fmt::Debug for RunLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self._held {
            Held::File { .. } => "RunLock(file)",
            Held::Session { .. } => "RunLock(advisory)",
        })
    }
}

enum Held {
    File {
        _file: File,
    },
    /// The session that holds the advisory lock; closing it releases the lock.
    Session {
        _session: Box<postgres::Client>,
    },
}

/// Why a dataflow's run lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("dataflow `{dataflow}` is being run by another process ({holder}); try again when that run ends")]
    Held {
        /// The dataflow.
        dataflow: String,
        /// Who holds it: the host and process id.
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

/// The second advisory key of `dataflow`: stable across processes and releases.
fn advisory_key(dataflow: &str) -> i32 {
    let digest = Sha256::digest(dataflow.as_bytes());
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) & i32::MAX
}

/// Who holds a run lock, for the message of a refused run.
fn holder_now() -> String {
    format!("pid {} since {}", std::process::id(), humantime::format_rfc3339_seconds(SystemTime::now()))
}

/// Takes the run lock of `dataflow` for the state database `state`, or says who holds it.
pub fn lock_dataflow(state: &DatabaseUrl, dataflow: &str) -> Result<RunLock, LockError> {
    let failed = |message: String| LockError::Failed {
        dataflow: dataflow.to_string(),
        location: state.to_string(),
        message,
    };
    match state {
        DatabaseUrl::Sqlite(state_path) => lock_file(&lock_path(state_path, dataflow), dataflow, failed),
        DatabaseUrl::Postgres(url) => {
            let mut session = pg::connect_unpooled(url).map_err(&failed)?;
            // The session's name tells another process who holds the lock.
            let name = format!("{} run {dataflow}, {}", pg::APPLICATION_NAME, holder_now());
            let taken = session
                .execute("SELECT set_config('application_name', $1, false)", &[&name])
                .and_then(|_| {
                    session.query_one(
                        "SELECT pg_try_advisory_lock($1, $2)",
                        &[&ADVISORY_CLASS, &advisory_key(dataflow)],
                    )
                })
                .and_then(|row| row.try_get::<_, bool>(0))
                .map_err(|e| failed(pg::describe(&e)))?;
            if taken {
                return Ok(RunLock { _held: Held::Session { _session: Box::new(session) } });
            }
            let holder = session
                .query(
                    "SELECT a.application_name || coalesce(' from ' || host(a.client_addr), '')
                     FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                     WHERE l.locktype = 'advisory' AND l.classid = $1::int8::oid AND l.objid = $2::int8::oid
                     AND l.objsubid = 2 AND l.granted
                     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                    &[&i64::from(ADVISORY_CLASS), &i64::from(advisory_key(dataflow))],
                )
                .ok()
                .and_then(|rows| rows.first().and_then(|row| row.try_get::<_, String>(0).ok()))
                .unwrap_or_else(|| "another session".to_string());
            Err(LockError::Held { dataflow: dataflow.to_string(), holder })
        }
    }
}

fn lock_file(
    path: &Path,
    dataflow: &str,
    failed: impl Fn(String) -> LockError,
) -> Result<RunLock, LockError> {
    let io = |e: std::io::Error| failed(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(path.parent().expect("a lock file has a folder")).map_err(io)?;
    let mut file =
        File::options().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(holder_now().as_bytes()))
                .map_err(io)?;
            Ok(RunLock { _held: Held::File { _file: file } })
        }
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            Err(LockError::Held { dataflow: dataflow.to_string(), holder })
        }
        Err(TryLockError::Error(source)) => Err(io(source)),
    }
}

/// Whether a run of `dataflow` holds its lock now (false where that cannot be told).
pub fn is_running(state: &DatabaseUrl, dataflow: &str) -> bool {
    match state {
        DatabaseUrl::Sqlite(state_path) => {
            let Ok(file) = File::open(lock_path(state_path, dataflow)) else { return false };
            matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock))
        }
        DatabaseUrl::Postgres(url) => pg::connect(url)
            .and_then(|mut client| {
                client
                    .query_one(
                        "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory'
                         AND classid = $1::int8::oid AND objid = $2::int8::oid AND objsubid = 2 AND granted
                         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                        &[&i64::from(ADVISORY_CLASS), &i64::from(advisory_key(dataflow))],
                    )
                    .and_then(|row| row.try_get::<_, bool>(0))
                    .map_err(|e| pg::describe(&e))
            })
            .unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_testkit::TestDatabase;

    fn a_second_lock_is_refused_naming_the_holder_until_the_first_is_dropped(state: &DatabaseUrl) {
        let first = lock_dataflow(state, "Orders").unwrap();
        assert!(is_running(state, "Orders"));
        let refused = lock_dataflow(state, "Orders").unwrap_err().to_string();
        assert!(refused.contains(&format!("pid {}", std::process::id())), "{refused}");
        assert!(lock_dataflow(state, "Customers").is_ok(), "other dataflows are not held up");
        drop(first);
        assert!(!is_running(state, "Orders"));
        assert!(lock_dataflow(state, "Orders").is_ok());
    }

    #[test]
    fn a_file_lock_is_held_once() {
        let dir = tempfile::tempdir().unwrap();
        a_second_lock_is_refused_naming_the_holder_until_the_first_is_dropped(&DatabaseUrl::Sqlite(
            dir.path().join("state.db"),
        ));
    }

    #[test]
    fn an_advisory_lock_is_held_once() {
        let database = TestDatabase::create();
        a_second_lock_is_refused_naming_the_holder_until_the_first_is_dropped(&DatabaseUrl::Postgres(
            database.url().to_string(),
        ));
    }
}
