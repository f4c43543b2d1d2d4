//! `sluice optimize`: a dataflow's tables compacted and their unreferenced files deleted, where the sink
//! keeps files (Delta Lake), under the dataflow's lock so that no run writes meanwhile.

use super::SyncError;
use super::stores::{lock, open_stripe_table, refuse_custom_sink, sink_error};
use crate::config::{Config, SourceConfig};
use crate::sink::{Optimized, TableSpec};

/// Optimizes every table of `name`; each table with what was done to it (`None`: its sink keeps no files).
pub fn optimize(config: &Config, name: &str) -> Result<Vec<(String, Option<Optimized>)>, SyncError> {
    let dataflow = config.dataflow(name)?;
    refuse_custom_sink(name, dataflow, "optimize")?;
    let lock = lock(config, name)?;
    let mut done = Vec::new();
    for (scope, table) in config.dataflow_tables(name, dataflow) {
        let mut sink = match &dataflow.source {
            SourceConfig::Stripe(_) => {
                open_stripe_table(config, name, dataflow, &scope, table.clone(), lock.lease())
            }
            _ => crate::sink::open(&config.sink_database(dataflow), &scope, &TableSpec::of(dataflow, name)),
        }
        .map_err(sink_error(name))?;
        sink.fence(lock.lease().token()).map_err(sink_error(name))?;
        done.push((table, sink.optimize().map_err(sink_error(name))?));
    }
    Ok(done)
}
