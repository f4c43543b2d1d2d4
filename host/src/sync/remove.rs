//! `sluice remove`: a dataflow's data deleted, its configuration kept.

use super::SyncError;
use crate::config::{Config, DatabaseUrl};
use crate::sink::{SqliteTables, TableSink};
use crate::state::{StateStore, lock_dataflow};

/// Removes the dataflow called `name`: its table, rejected rows, ledger, cursor and run history; returns
/// the rows its table held. The configuration is left as it is, so the next run starts from scratch.
/// Refused while the dataflow runs.
pub fn remove(config: &Config, name: &str) -> Result<u64, SyncError> {
    let dataflow = config.dataflow(name)?;
    let DatabaseUrl::Sqlite(state_path) = config.state_database();
    let _lock = lock_dataflow(&state_path, name)?;
    let DatabaseUrl::Sqlite(sink_path) = config.sink_database(dataflow);
    // The sink first: were the process to stop between the two, the ledger would only say too much is
    // loaded, and the next run squares it with the emptied sink.
    let rows = SqliteTables::open(&sink_path, name, &dataflow.table_spec(name))
        .and_then(|mut sink| sink.remove())
        .map_err(|source| SyncError::Sink { dataflow: name.to_string(), source })?;
    StateStore::open(&state_path)
        .and_then(|mut state| state.forget_dataflow(name))
        .map_err(|source| SyncError::State { dataflow: name.to_string(), source })?;
    Ok(rows)
}
