//! `sluice rollback`: a dataflow's table back to where it was before its newest run.

use super::SyncError;
use super::runner::reconcile;
use crate::config::{Config, DatabaseUrl};
use crate::sink::{RolledBack, SqliteTables, TableSink};
use crate::state::{StateStore, lock_dataflow};

/// Undoes the newest run of `name` that changed its table: the run's rows, columns, rejected rows and
/// markers go in one transaction of the sink; then the ledger forgets the run's objects and the cursor
/// moves back before them, so the next run imports them again. Rolling back twice undoes two runs.
/// Refused while the dataflow runs, and when no run is left to undo (nothing is changed then).
pub fn rollback(config: &Config, name: &str) -> Result<RolledBack, SyncError> {
    let dataflow = config.dataflow(name)?;
    let DatabaseUrl::Sqlite(state_path) = config.state_database();
    let _lock = lock_dataflow(&state_path, name)?;
    let DatabaseUrl::Sqlite(sink_path) = config.sink_database(dataflow);
    let sink_error = |source| SyncError::Sink { dataflow: name.to_string(), source };
    let mut sink = SqliteTables::open(&sink_path, name, &dataflow.table_spec(name)).map_err(sink_error)?;
    let rolled_back = sink.rollback_last().map_err(sink_error)?.ok_or_else(|| {
        SyncError::Plan(format!(
            "dataflow `{name}` has no run to roll back: its table holds nothing a run loaded"
        ))
    })?;
    let state_error = |source| SyncError::State { dataflow: name.to_string(), source };
    let mut state = StateStore::open(&state_path).map_err(state_error)?;
    state.mark_rolled_back(rolled_back.run_id).map_err(state_error)?;
    reconcile(name, &mut state, &mut sink).map_err(SyncError::Plan)?;
    Ok(rolled_back)
}
