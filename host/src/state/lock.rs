//! One run per dataflow at a time, across processes: an OS file lock per dataflow, in a folder beside the
//! state database. The OS drops the lock when the process ends, however it ends, so a killed run leaves no
//! stale lock behind.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Held while a dataflow runs; dropping it lets the next run in.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("dataflow `{dataflow}` is being run by another process ({holder}); try again when that run ends")]
    Held { dataflow: String, holder: String },
    #[error("cannot lock dataflow `{dataflow}` ({}): {source}", path.display())]
    Io { dataflow: String, path: PathBuf, source: std::io::Error },
}

/// The lock file of `dataflow` for the state database at `state_path`.
fn lock_path(state_path: &Path, dataflow: &str) -> PathBuf {
    let mut folder = state_path.as_os_str().to_owned();
    folder.push(".locks");
    PathBuf::from(folder).join(format!("{dataflow}.lock"))
}

/// Takes the run lock of `dataflow`, or says who holds it.
pub fn lock_dataflow(state_path: &Path, dataflow: &str) -> Result<RunLock, LockError> {
    let path = lock_path(state_path, dataflow);
    let io = |source| LockError::Io { dataflow: dataflow.to_string(), path: path.clone(), source };
    std::fs::create_dir_all(path.parent().expect("a lock file has a folder")).map_err(io)?;
    let mut file =
        File::options().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {
            let holder = format!(
                "pid {} since {}",
                std::process::id(),
                humantime::format_rfc3339_seconds(SystemTime::now())
            );
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(holder.as_bytes()))
                .map_err(io)?;
            Ok(RunLock { _file: file })
        }
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            Err(LockError::Held { dataflow: dataflow.to_string(), holder })
        }
        Err(TryLockError::Error(source)) => Err(io(source)),
    }
}

/// Whether a run of `dataflow` holds its lock now.
pub fn is_running(state_path: &Path, dataflow: &str) -> bool {
    let Ok(file) = File::open(lock_path(state_path, dataflow)) else { return false };
    matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let first = lock_dataflow(&state, "Orders").unwrap();
        assert!(is_running(&state, "Orders"));
        let refused = lock_dataflow(&state, "Orders").unwrap_err().to_string();
        assert!(refused.contains(&format!("pid {}", std::process::id())), "{refused}");
        assert!(lock_dataflow(&state, "Customers").is_ok(), "other dataflows are not held up");
        drop(first);
        assert!(!is_running(&state, "Orders"));
        assert!(lock_dataflow(&state, "Orders").is_ok());
    }
}
