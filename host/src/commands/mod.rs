//! The subcommands of `sluice`, one module each, and what they share.

#[macro_use]
mod output;

pub mod check;
pub mod daemon;
pub mod dataflows;
pub mod parse;
pub mod plugin;
pub mod preview;
mod progress;
pub mod remove;
pub mod rollback;
pub mod run;

use sluice::config::{Config, ConfigError};
use sluice::plugin::{HostSettings, PluginHost, default_cache_dir};
use sluice::state::LockError;
use sluice::sync::SyncError;
use std::path::Path;

/// The configuration read when `--config` is not given, if it exists.
pub(crate) const DEFAULT_CONFIG: &str = "connector.toml";

/// How a command failed, and so with which exit status.
pub enum Failure {
    /// The input could not be read as asked, or a run did not load everything (exit 1).
    Input(String),
    /// The command or the configuration is wrong (exit 2).
    Usage(String),
    /// Another process runs the dataflow: try again later (exit 75, `EX_TEMPFAIL`), so that a cron job
    /// can tell "busy" from "broken".
    Busy(String),
    /// Stdout's reader went away before the command had printed all (`sluice dataflows | head -1`): the
    /// command stops printing and ends quietly (exit 0), as `rg` does.
    Closed,
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Self {
        Failure::Usage(error.to_string())
    }
}

impl From<SyncError> for Failure {
    fn from(error: SyncError) -> Self {
        match error {
            SyncError::Config(_) | SyncError::Plugin { .. } => Failure::Usage(error.to_string()),
            SyncError::Locked(LockError::Held { .. }) => Failure::Busy(error.to_string()),
            _ => Failure::Input(error.to_string()),
        }
    }
}

/// The configuration named by `--config`, else `./connector.toml` where it exists, else an empty one.
pub fn load_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(path) => Config::load(path),
        None if Path::new(DEFAULT_CONFIG).exists() => Config::load(Path::new(DEFAULT_CONFIG)),
        None => Ok(Config::default()),
    }
}

/// The configuration for commands that need dataflows: one must exist.
fn load_dataflows(path: Option<&Path>) -> Result<Config, Failure> {
    let config = load_config(path)?;
    if config.dataflows.is_empty() {
        return Err(Failure::Usage(match path {
            Some(path) => format!("{} defines no dataflows", path.display()),
            None => format!("no {DEFAULT_CONFIG} here and no --config given: there are no dataflows to run"),
        }));
    }
    Ok(config)
}

/// The plugin host, with the configuration's cache.
fn plugin_host(config: &Config) -> Result<PluginHost, Failure> {
    let cache_dir = config.plugin_cache.clone().or_else(default_cache_dir);
    PluginHost::new(HostSettings { cache_dir }).map_err(|e| Failure::Usage(format!("{e:#}")))
}

/// The runtime sources do their I/O on; commands block on it from the main thread.
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::Usage(format!("cannot start the I/O runtime: {e}")))
}

/// Prints rows under headers, each column as wide as its widest cell.
fn print_table(headers: &[&str], rows: Vec<Vec<String>>) -> Result<(), Failure> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> =
            cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:width$}", width = *width)).collect();
        out!("{}", padded.join("  ").trim_end())
    };
    line(headers.to_vec())?;
    for row in &rows {
        line(row.iter().map(String::as_str).collect())?;
    }
    Ok(())
}
