//! `sluice remove`: deletes a dataflow's data after asking (or with `--yes`).

use super::{Failure, load_dataflows};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

pub fn remove(config_path: Option<&Path>, name: &str, yes: bool) -> Result<(), Failure> {
    let config = load_dataflows(config_path)?;
    let table = config.dataflow(name)?.table_name(name);
    let what =
        format!("table `{table}`, its rejected rows, and the dataflow's ledger, cursor and run history");
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::Usage(format!(
                "removing dataflow `{name}` deletes {what}; pass --yes to confirm"
            )));
        }
        // Asked only on a terminal, whose stderr does not close under us.
        eprint!("Remove dataflow `{name}`? This deletes {what}. [y/N] ");
        std::io::stderr().flush().ok();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).ok();
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            out!("{name}: nothing removed")?;
            return Ok(());
        }
    }
    let rows = sluice::sync::remove(&config, name)?;
    out!(
        "{name}: removed {what} ({rows} rows); its configuration is unchanged, so the next run starts from scratch"
    )?;
    Ok(())
}
