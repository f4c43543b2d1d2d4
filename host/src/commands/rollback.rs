//! `sluice rollback`: a dataflow's table back to where it was before its newest run; and `sluice
//! optimize`, which keeps what a rollback needs while it compacts.

use super::{Failure, load_dataflows};
use std::path::Path;

pub fn rollback(config_path: Option<&Path>, name: &str, skip: bool) -> Result<(), Failure> {
    let config = load_dataflows(config_path)?;
    let rolled_back = sluice::sync::rollback(&config, name, skip)?;
    let next = if skip {
        "its objects are marked skipped and the next run leaves them alone until they change"
    } else {
        "its objects will be imported again by the next run"
    };
    out!(
        "{name}: rolled back run {} ({} rows removed); {next}",
        rolled_back.run_id,
        rolled_back.rows_removed
    )?;
    Ok(())
}

pub fn optimize(config_path: Option<&Path>, name: &str) -> Result<(), Failure> {
    let config = load_dataflows(config_path)?;
    for (table, optimized) in sluice::sync::optimize(&config, name)? {
        match optimized {
            Some(done) => out!(
                "{name}: table `{table}`: {} small files merged into {}, {} unreferenced files deleted",
                done.files_merged,
                done.files_written,
                done.files_deleted
            )?,
            None => out!("{name}: table `{table}`: nothing to optimize (its sink is a database)")?,
        }
    }
    Ok(())
}
