//! `sluice rollback`: a dataflow's table back to where it was before its newest run.

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
