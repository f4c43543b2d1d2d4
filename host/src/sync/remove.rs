//! `sluice remove`: a dataflow's data deleted, its configuration kept.

use super::SyncError;
use super::stores::{DataflowStores, sink_error, state_error};
use crate::config::Config;

/// Removes the dataflow called `name`: its table, rejected rows, ledger, cursor and run history; returns
/// the rows its table held. The configuration is left as it is, so the next run starts from scratch.
/// Refused while the dataflow runs.
pub fn remove(config: &Config, name: &str) -> Result<u64, SyncError> {
    // Held whole, so the lock is kept to the end.
    let mut stores = DataflowStores::open(config, name, config.dataflow(name)?)?;
    // The sink first: were the process to stop between the two, the ledger would only say too much is
    // loaded, and the next run squares it with the emptied sink.
    let rows = stores.sink.remove().map_err(sink_error(name))?;
    stores.state.forget_dataflow(name).map_err(state_error(name))?;
    Ok(rows)
}
