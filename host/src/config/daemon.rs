//! `[daemon]`: how `sluice daemon` schedules runs and serves its HTTP API.
//!
//! ```toml
//! [daemon]
//! listen = "127.0.0.1:7878"          # the HTTP API and dashboard (default)
//! token = "${SLUICE_API_TOKEN}"      # bearer token of the write endpoints; required beyond loopback
//! time_zone = "Europe/Berlin"        # of `daily` and cron schedules (default UTC)
//! daily_at = "02:00"                 # when `daily` runs (default 00:00)
//! jitter = "10m"                     # spreads each dataflow's slots by up to this (default 0s)
//! max_concurrent_runs = 2            # runs at once across dataflows (default 2)
//! max_concurrent_objects = 4         # objects this worker loads at once for runs it shares (default: cores, at most 4)
//! shutdown_timeout = "30s"           # how long a stop waits for objects in flight (default 30s)
//! watch = true                       # reload on a change of this file or a plugin's .wasm (default true)
//! ```

use super::Secret;
use super::duration;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// Where the daemon listens when `[daemon] listen` is not set: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// Runs at once across dataflows when `max_concurrent_runs` is not set.
pub const DEFAULT_MAX_CONCURRENT_RUNS: usize = 2;
/// How long a stopping daemon waits for the objects in flight when `shutdown_timeout` is not set.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Delta tables are compacted and vacuumed after a run once a day.
pub const DEFAULT_OPTIMIZE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// `[daemon]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// The address of the HTTP API and dashboard (default `127.0.0.1:7878`).
    pub listen: Option<SocketAddr>,
    /// The bearer token the write endpoints (run, rollback, remove) require. Bound beyond loopback, they
    /// are refused without one.
    #[serde(default)]
    pub token: Option<Secret>,
    /// The IANA time zone of `daily` and cron schedules (default `UTC`); a dataflow's `time_zone` wins.
    pub time_zone: Option<String>,
    /// When a plain `daily` schedule runs, `HH:MM` (default `00:00`).
    pub daily_at: Option<String>,
    /// Each dataflow's slots are moved later by a fixed share of this, taken from its name, so that many
    /// dataflows on one schedule do not all start at once (default `0s`).
    #[serde(default, deserialize_with = "duration")]
    pub jitter: Option<Duration>,
    /// Runs at once across all dataflows (default 2); one dataflow never runs twice at once.
    pub max_concurrent_runs: Option<usize>,
    /// Objects this daemon, as a worker, loads at once for the runs that workers share (default: its
    /// cores, at most 4). Only with PostgreSQL state, where daemons on many machines share runs.
    pub max_concurrent_objects: Option<usize>,
    /// How long SIGTERM or SIGINT waits for the objects in flight to commit before they are rolled back
    /// (default `30s`).
    #[serde(default, deserialize_with = "duration")]
    pub shutdown_timeout: Option<Duration>,
    /// Reload when this file or a plugin's `.wasm` file changes (default `true`); SIGHUP reloads either way.
    pub watch: Option<bool>,
    /// A dataflow's Delta tables are optimized (`sluice optimize`) after a run, at most this often
    /// (default `24h`; `0s` never).
    #[serde(default, deserialize_with = "duration")]
    pub optimize_every: Option<Duration>,
}

impl DaemonConfig {
    /// The address the API listens on (default `127.0.0.1:7878`).
    pub fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("a valid address"))
    }

    /// The bearer token, where one is set (an empty `${VAR:-}` counts as none).
    pub fn token(&self) -> Option<&str> {
        self.token.as_ref().map(Secret::expose).filter(|token| !token.is_empty())
    }

    /// The IANA time zone schedules are read in (default `UTC`).
    pub fn time_zone(&self) -> &str {
        self.time_zone.as_deref().unwrap_or("UTC")
    }

    /// `daily_at` as (hour, minute).
    pub fn daily_at(&self) -> (u8, u8) {
        self.daily_at.as_deref().and_then(|at| parse_time_of_day(at).ok()).unwrap_or((0, 0))
    }

    /// The most a dataflow's runs are put off from their slot (default none).
    pub fn jitter(&self) -> Duration {
        self.jitter.unwrap_or(Duration::ZERO)
    }

    /// The most runs at once (default 2).
    pub fn max_concurrent_runs(&self) -> usize {
        self.max_concurrent_runs.unwrap_or(DEFAULT_MAX_CONCURRENT_RUNS)
    }

    /// The most objects this daemon's worker loads at once (default: its cores, at most 4).
    pub fn max_concurrent_objects(&self) -> usize {
        self.max_concurrent_objects
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(4))
    }

    /// How long objects in flight get to commit at shutdown (default 30 s).
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT)
    }

    /// How often a dataflow's Delta tables are optimized after its runs; `None`: never.
    pub fn optimize_every(&self) -> Option<Duration> {
        Some(self.optimize_every.unwrap_or(DEFAULT_OPTIMIZE_EVERY)).filter(|every| !every.is_zero())
    }

    /// Whether the configuration and plugin files are watched for changes (default true).
    pub fn watch(&self) -> bool {
        self.watch.unwrap_or(true)
    }

    /// What serde cannot check, as (key under `daemon`, message).
    pub(super) fn check(&self) -> Result<(), (&'static str, String)> {
        if let Some(zone) = &self.time_zone {
            check_time_zone(zone).map_err(|message| ("time_zone", message))?;
        }
        if let Some(at) = &self.daily_at {
            parse_time_of_day(at).map_err(|message| ("daily_at", message))?;
        }
        if self.max_concurrent_runs == Some(0) {
            return Err(("max_concurrent_runs", "allow at least 1 run at a time".into()));
        }
        if self.max_concurrent_objects == Some(0) {
            return Err(("max_concurrent_objects", "allow at least 1 object at a time".into()));
        }
        Ok(())
    }
}

/// Reads `HH:MM` (24-hour).
pub fn parse_time_of_day(text: &str) -> Result<(u8, u8), String> {
    let invalid = || format!("`{text}` is not a time of day like \"03:30\"");
    let (hour, minute) = text.trim().split_once(':').ok_or_else(invalid)?;
    let hour: u8 = hour.parse().ok().filter(|h| *h < 24).ok_or_else(invalid)?;
    let minute: u8 = minute.parse().ok().filter(|m| *m < 60).ok_or_else(invalid)?;
    Ok((hour, minute))
}

/// An IANA time zone name the bundled database knows (`UTC`, `Europe/Berlin`).
pub fn check_time_zone(name: &str) -> Result<(), String> {
    jiff::tz::TimeZone::get(name).map(|_| ()).map_err(|_| {
        format!("`{name}` is not a time zone; write an IANA name like \"UTC\" or \"Europe/Berlin\"")
    })
}
