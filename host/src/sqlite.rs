//! SQLite connections, as the tables sink and the state store open them: a busy timeout, and WAL set on
//! the file even while other processes open it for the first time.

use rusqlite::{Connection, ErrorCode};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a refused switch to WAL waits before it is asked again.
const WAL_RETRY: Duration = Duration::from_millis(10);

/// Opens (creating where missing) the database at `path`, waiting up to `busy_timeout` for another
/// connection's lock, in WAL mode (readers see what is committed while a run writes) with `synchronous =
/// NORMAL` (a killed process loses nothing committed).
pub fn open(path: &Path, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(busy_timeout)?;
    // WAL is kept in the file: the first connection to a new one sets it. SQLite refuses that at once,
    // without its busy handler, while another connection holds the file (as the first syncs of a daemon's
    // dataflows all do at its start), so it is asked again within the busy timeout.
    let started = Instant::now();
    loop {
        match connection.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;") {
            Err(rusqlite::Error::SqliteFailure(error, _))
                if error.code == ErrorCode::DatabaseBusy && started.elapsed() < busy_timeout =>
            {
                std::thread::sleep(WAL_RETRY);
            }
            outcome => return outcome.map(|()| connection),
        }
    }
}
