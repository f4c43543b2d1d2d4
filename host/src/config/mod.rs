//! `connector.toml`: the plugins, dataflows and state store Sluice runs with, read and checked.
//!
//! ```toml
//! [state]                           # runs, cursors and the object ledger
//! url = "sqlite://sluice-state.db"  # the default; or postgres://USER@HOST/DATABASE
//! lease_timeout = "30s"             # the default: how long a run's lease lasts unrenewed
//!
//! [sink]                            # the tables database of dataflows whose sink names none
//! url = "sqlite://sluice.db"        # the default; or postgres://USER@HOST/DATABASE, or delta+file://PATH
//!
//! [plugins.fixedwidth]              # a custom format plugin, by path (relative to this file)
//! path = "plugins/fixedwidth.wasm"
//! memory_limit_mib = 64             # default 256
//! call_timeout = "5s"               # default 30s
//!
//! [dataflows.Orders]                # a name starts with a letter and holds letters and digits only
//! display_name = "Shop orders"
//! schedule = "daily"
//! initial_lookback = "90d"
//!
//! [dataflows.Orders.source]
//! type = "s3"
//! bucket = "acme-exports"
//! prefix = "orders/"
//! role_arn = "arn:aws:iam::123456789012:role/sluice"
//! external_id = "${SLUICE_EXTERNAL_ID}"  # ${VAR} comes from the environment
//!
//! [dataflows.Orders.format]
//! plugin = "csv"
//! options = { delimiter = ";", null_values = ["", "NA"] }
//!
//! [dataflows.Orders.sink]
//! type = "tables"
//! url = "sqlite://sluice.db"
//! table = "orders"
//! ```
//!
//! Every error names the file, the line and the key.

pub mod daemon;
mod dataflow;
mod locate;
mod masked;
mod stripe;

pub use crate::env::Secret;
pub use daemon::DaemonConfig;
pub use dataflow::*;
pub use masked::masked_dataflow;
pub use stripe::STRIPE_KEY_VARIABLE;

use crate::env;
use crate::plugin::{
    BUNDLED_FORMATS, BUNDLED_TEMPLATES, Bundled, Limits, PluginSource, PluginSpec, bundled_format,
    bundled_template,
};
use locate::Locator;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The state store when `[state]` names none, relative to the configuration file.
pub const DEFAULT_STATE_URL: &str = "sqlite://sluice-state.db";
/// The tables sink's database when a dataflow names none, relative to the configuration file.
pub const DEFAULT_SINK_URL: &str = "sqlite://sluice.db";
/// How long a run's lease on its dataflow lasts unrenewed, where `[state] lease_timeout` does not say.
pub const DEFAULT_LEASE_TIMEOUT: Duration = Duration::from_secs(30);

/// A configuration error, with where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why not.
        source: std::io::Error,
    },
    /// The configuration is not valid.
    #[error("{}{message}", Place { path, line: *line, key: key.as_deref() })]
    Invalid {
        /// The file (empty for a configuration built from Rust values).
        path: PathBuf,
        /// The 1-based line of the key, where it can be told.
        line: Option<usize>,
        /// The key, as `dataflows.Orders.sink.url`.
        key: Option<String>,
        /// What is wrong and how to mend it.
        message: String,
    },
}

/// "connector.toml line 12, `dataflows.Orders.source.bucket`: " before a message.
struct Place<'a> {
    path: &'a Path,
    line: Option<usize>,
    key: Option<&'a str>,
}

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.path.as_os_str().is_empty() {
            parts.push(self.path.display().to_string());
        }
        if let Some(line) = self.line {
            parts.push(format!("line {line}"));
        }
        let place = parts.join(" ");
        match (place.is_empty(), self.key) {
            (true, None) => Ok(()),
            (true, Some(key)) => write!(f, "`{key}`: "),
            (false, None) => write!(f, "{place}: "),
            (false, Some(key)) => write!(f, "{place}, `{key}`: "),
        }
    }
}

/// The whole of `connector.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Plugins by name: custom ones by path, bundled ones with other limits.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginConfig>,
    /// Dataflows by name.
    #[serde(default)]
    pub dataflows: BTreeMap<String, DataflowConfig>,
    /// Where compiled plugins are cached (default: see [`crate::plugin::default_cache_dir`]).
    pub plugin_cache: Option<PathBuf>,
    /// Where runs, cursors and the object ledger are kept.
    #[serde(default)]
    pub state: StateConfig,
    /// Defaults for every dataflow's sink.
    #[serde(default)]
    pub sink: SinkDefaults,
    /// How `sluice daemon` schedules runs and serves its API.
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// The folder relative paths in the file are taken from: the file's own folder.
    #[serde(skip)]
    base_dir: PathBuf,
    #[serde(skip)]
    path: PathBuf,
}

/// `[plugins.NAME]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The `.wasm` component; omitted for a bundled plugin.
    pub path: Option<PathBuf>,
    /// The most linear memory one instance may use, in MiB.
    pub memory_limit_mib: Option<u64>,
    /// The longest one call into the plugin may run (`"30s"`, `"500ms"`).
    #[serde(default, deserialize_with = "duration")]
    pub call_timeout: Option<Duration>,
}

/// `[state]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `sqlite://PATH`, relative to the configuration file (default `sqlite://sluice-state.db`), or
    /// `postgres://USER@HOST/DATABASE`.
    #[serde(default, deserialize_with = "env::optional")]
    pub url: Option<String>,
    /// How long a run's lease on its dataflow lasts unrenewed (default 30s): a run whose process dies
    /// holds its dataflow that long at most, and a run cut off from the state store stops within it.
    #[serde(default, deserialize_with = "duration")]
    pub lease_timeout: Option<Duration>,
}

/// `[sink]`: what a dataflow's sink takes when it does not say.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkDefaults {
    /// The tables database (default `sqlite://sluice.db`).
    #[serde(default, deserialize_with = "env::optional")]
    pub url: Option<String>,
    /// How a `delta+s3://` location's bucket is reached.
    pub s3: Option<crate::aws::S3Access>,
}

/// `s3` says how a `delta+s3://` location's bucket is reached, and belongs with one only.
fn check_s3_access(url: Option<&str>, s3: Option<&crate::aws::S3Access>) -> Result<(), String> {
    match (url, s3) {
        (Some(url), Some(_)) if url.starts_with("delta+s3://") => Ok(()),
        (url, Some(_)) => Err(format!(
            "`s3` says how to reach a bucket, and the sink's url (`{}`) is not in one: it belongs with a delta+s3:// url",
            url.map_or_else(|| DEFAULT_SINK_URL.to_string(), crate::pg::redact)
        )),
        (_, None) => Ok(()),
    }
}

fn duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map(Some).map_err(|e| {
        serde::de::Error::custom(format!("`{text}` is not a duration like \"30s\" or \"90d\": {e}"))
    })
}

impl Config {
    /// A configuration with no dataflows, whose relative paths (a local source's folder, a SQLite file)
    /// are taken from `base_dir`: the start of one built from Rust values. Its fields (`state`, `sink`,
    /// `plugins`) are set directly, its dataflows through [`Config::add_dataflow`].
    pub fn new(base_dir: impl Into<PathBuf>) -> Config {
        Config { base_dir: base_dir.into(), ..Config::default() }
    }

    /// Adds the dataflow `name`, checking it and the rest of the configuration as a file would be; the
    /// error names the key, as `dataflows.NAME.sink.url`.
    pub fn add_dataflow(&mut self, name: &str, dataflow: DataflowConfig) -> Result<(), ConfigError> {
        let previous = self.dataflows.insert(name.to_string(), dataflow);
        self.check().map_err(|(key, message)| {
            match previous {
                Some(previous) => self.dataflows.insert(name.to_string(), previous),
                None => self.dataflows.remove(name),
            };
            ConfigError::Invalid { path: self.path.clone(), line: None, key: Some(key), message }
        })
    }

    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Checks configuration text; `path` names it in messages and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let locator = Locator::new(text);
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let message = e.message().trim_end().to_string();
            let key = e.span().and_then(|span| locator.key_at(&span, &message).map(str::to_string));
            let line = match &key {
                Some(key) => locator.line_of(key),
                None => e.span().map(|span| locator.line(span.start)),
            };
            ConfigError::Invalid { path: path.to_path_buf(), line, key, message }
        })?;
        config.path = path.to_path_buf();
        config.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        config.check().map_err(|(key, message)| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: locator.line_of(&key),
            key: Some(key),
            message,
        })?;
        Ok(config)
    }

    /// What serde cannot check: names, plugins, URLs; as (key, message).
    fn check(&self) -> Result<(), (String, String)> {
        if let Some(url) = &self.state.url {
            self.database(url).map_err(|message| ("state.url".to_string(), message))?;
        }
        if self.state.lease_timeout.is_some_and(|timeout| timeout < std::time::Duration::from_secs(1)) {
            return Err((
                "state.lease_timeout".to_string(),
                "a lease must last at least 1s: it is renewed every sixth of it".to_string(),
            ));
        }
        if let Some(url) = &self.sink.url {
            self.sink_url(url, self.sink.s3.as_ref()).map_err(|message| ("sink.url".to_string(), message))?;
        }
        check_s3_access(self.sink.url.as_deref(), self.sink.s3.as_ref())
            .map_err(|m| ("sink.s3".to_string(), m))?;
        self.daemon.check().map_err(|(key, message)| (format!("daemon.{key}"), message))?;
        for (name, dataflow) in &self.dataflows {
            let key = |sub: &str| format!("dataflows.{name}{sub}");
            check_dataflow_name(name).map_err(|message| (key(""), message))?;
            // Both would write the same default table, and on PostgreSQL the same schema.
            if let Some(other) = self.dataflows.keys().find(|o| *o != name && o.eq_ignore_ascii_case(name)) {
                return Err((
                    key(""),
                    format!(
                        "dataflow names `{other}` and `{name}` differ only in case; their tables would be the same"
                    ),
                ));
            }
            match (&dataflow.source, &dataflow.format) {
                (SourceConfig::Stripe(stripe), format) => {
                    stripe.check().map_err(|(name, message)| (key(&format!(".source.{name}")), message))?;
                    check_stripe_source(dataflow, format.is_some())
                        .map_err(|(sub, message)| (key(sub), message))?;
                }
                (_, Some(format)) => {
                    self.plugin_spec(&format.plugin).map_err(|e| (key(".format.plugin"), e.message()))?;
                }
                (_, None) => {
                    return Err((
                        key(".format"),
                        format!(
                            "dataflow `{name}` reads files and needs their format: format = {{ plugin = \"csv\" }}"
                        ),
                    ));
                }
            }
            if let SourceConfig::S3(S3SourceConfig { notifications: Some(notifications), .. }) =
                &dataflow.source
            {
                notifications
                    .check()
                    .map_err(|(sub, message)| (key(&format!(".source.notifications.{sub}")), message))?;
            }
            if let Some(zone) = &dataflow.time_zone {
                daemon::check_time_zone(zone).map_err(|message| (key(".time_zone"), message))?;
            }
            if let Schedule::Cron(expression) = &dataflow.schedule {
                parse_cron(expression).map_err(|message| (key(".schedule"), message))?;
            }
            if let Some(template) = &dataflow.template {
                self.template_spec(&template.plugin).map_err(|e| (key(".template.plugin"), e.message()))?;
            }
            if let Some(url) = &dataflow.sink.url {
                self.sink_url(url, None).map_err(|message| (key(".sink.url"), message))?;
            }
            let url = dataflow.sink.url.as_deref().or(self.sink.url.as_deref());
            check_s3_access(url, dataflow.sink.s3.as_ref()).map_err(|message| (key(".sink.s3"), message))?;
            let on_delta = url.unwrap_or(DEFAULT_SINK_URL).starts_with("delta+");
            if !dataflow.sink.partition_by.is_empty() && !on_delta {
                return Err((
                    key(".sink.partition_by"),
                    "`partition_by` is for Delta tables (url = \"delta+file://...\" or \"delta+s3://...\")"
                        .into(),
                ));
            }
            if let Some(table) = &dataflow.sink.table {
                check_table_name(table).map_err(|message| (key(".sink.table"), message))?;
            }
            match (dataflow.sink.mode, dataflow.sink.key.is_empty()) {
                (WriteMode::Merge, true) => {
                    return Err((
                        key(".sink.mode"),
                        "mode `merge` needs the columns to match rows on: key = [\"id\"]".into(),
                    ));
                }
                (WriteMode::Append | WriteMode::Replace, false) => {
                    return Err((
                        key(".sink.key"),
                        "`key` is for mode = \"merge\"; remove it or set the mode".into(),
                    ));
                }
                _ => {}
            }
            dataflow
                .sink
                .check_stripe()
                .map_err(|(name, message)| (key(&format!(".sink.{name}")), message))?;
            dataflow
                .sink
                .check_stripe_mapping(dataflow.template.as_ref())
                .map_err(|(name, message)| (key(&format!(".template.{name}")), message))?;
            match (dataflow.sink.kind, &dataflow.sink.name) {
                (SinkKind::Custom, None) => {
                    return Err((
                        key(".sink.name"),
                        "a custom sink needs the name its program registered it under: name = \"...\"".into(),
                    ));
                }
                (SinkKind::Tables | SinkKind::Stripe, Some(_)) => {
                    return Err((
                        key(".sink.name"),
                        "`name` is for a custom sink (type = \"custom\")".into(),
                    ));
                }
                _ => {}
            }
            if dataflow.sink.versions == Some(0) {
                return Err((key(".sink.versions"), "keep at least 1 version".into()));
            }
            if dataflow.sink.parallelism == Some(0) {
                return Err((key(".sink.parallelism"), "load at least 1 object at a time".into()));
            }
            if let SourceConfig::S3(s3) = &dataflow.source
                && s3.access_key_id.is_some() != s3.secret_access_key.is_some()
            {
                return Err((
                    key(".source"),
                    "access_key_id and secret_access_key go together: give both or neither".to_string(),
                ));
            }
        }
        Ok(())
    }

    /// The configuration file this was read from (empty for a default configuration).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path of the file, taken from the file's own folder.
    pub fn resolve(&self, path: impl AsRef<Path>) -> PathBuf {
        self.base_dir.join(path)
    }

    /// Reads a database URL; relative SQLite paths are taken from the configuration file's folder.
    pub fn database(&self, url: &str) -> Result<DatabaseUrl, String> {
        match url.split_once("://") {
            Some(("sqlite", path)) if !path.is_empty() => Ok(DatabaseUrl::Sqlite(self.resolve(path))),
            Some(("postgres" | "postgresql", _)) => {
                crate::pg::check_url(url).map(|()| DatabaseUrl::Postgres(url.to_string()))
            }
            _ => Err(format!(
                "`{}` is not a database URL Sluice can use: write sqlite://PATH or postgres://USER@HOST/DATABASE",
                crate::pg::redact(url)
            )),
        }
    }

    /// Reads a tables sink's URL: a database URL, `delta+file://PATH` (a folder, relative to the
    /// configuration file's unless absolute), or `delta+s3://BUCKET/PREFIX`, reached with `s3` (the sink's
    /// `s3` table; the SDK's defaults without it).
    pub fn sink_url(&self, url: &str, s3: Option<&crate::aws::S3Access>) -> Result<SinkUrl, String> {
        Ok(match url.split_once("://") {
            Some(("delta+file", path)) if !path.is_empty() => std::path::absolute(self.resolve(path))
                .map(|path| SinkUrl::Delta(DeltaRoot::Folder(path)))
                .map_err(|e| format!("`{url}`: the folder cannot be located: {e}"))?,
            Some(("delta+s3", location)) => {
                let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
                if bucket.is_empty() {
                    return Err(format!(
                        "`{url}` names no bucket: write delta+s3://BUCKET or delta+s3://BUCKET/PREFIX"
                    ));
                }
                let prefix = prefix.trim_matches('/').to_string();
                let access = s3.cloned().unwrap_or_default();
                return Ok(SinkUrl::Delta(DeltaRoot::S3 { bucket: bucket.to_string(), prefix, access }));
            }
            Some((scheme, _)) if scheme.starts_with("delta") => {
                return Err(format!(
                    "`{url}` is not a Delta Lake location Sluice can use: write delta+file://PATH (a folder) or delta+s3://BUCKET/PREFIX"
                ));
            }
            _ => self.database(url).map(SinkUrl::Database).map_err(|message| {
                format!("{message}, or delta+file://PATH or delta+s3://BUCKET/PREFIX for Delta tables")
            })?,
        })
    }

    /// The state store's database.
    pub fn state_database(&self) -> DatabaseUrl {
        let url = self.state.url.as_deref().unwrap_or(DEFAULT_STATE_URL);
        self.database(url).expect("checked when the configuration was read")
    }

    /// Whether workers share the objects of `dataflow`'s runs: its state is in PostgreSQL (which every
    /// worker reaches), and its sink takes objects from many writers at once (a PostgreSQL table it
    /// appends to). Other sinks load a run's objects in the process that plans it.
    pub fn shares_work(&self, dataflow: &DataflowConfig) -> bool {
        matches!(self.state_database(), DatabaseUrl::Postgres(_))
            && dataflow.sink.kind == SinkKind::Tables
            && dataflow.sink.mode == WriteMode::Append
            && matches!(self.sink_database(dataflow), SinkUrl::Database(DatabaseUrl::Postgres(_)))
    }

    /// How long a run's lease lasts unrenewed (`[state] lease_timeout`).
    pub fn lease_timeout(&self) -> Duration {
        self.state.lease_timeout.unwrap_or(DEFAULT_LEASE_TIMEOUT)
    }

    /// Where a dataflow's tables sink keeps its tables.
    pub fn sink_database(&self, dataflow: &DataflowConfig) -> SinkUrl {
        let url = dataflow.sink.url.as_deref().or(self.sink.url.as_deref()).unwrap_or(DEFAULT_SINK_URL);
        let s3 = dataflow.sink.s3.as_ref().or(self.sink.s3.as_ref());
        self.sink_url(url, s3).expect("checked when the configuration was read")
    }

    /// The tables of the dataflow `name`, each as (the scope its sink is opened under, the table's name):
    /// a file dataflow's one table under the dataflow's name; a Stripe source's table per object, under
    /// `Name/object`, named after the object (on SQLite, where every dataflow's tables share one file,
    /// after the dataflow too: `billing_customers`).
    pub fn dataflow_tables(&self, name: &str, dataflow: &DataflowConfig) -> Vec<(String, String)> {
        let SourceConfig::Stripe(stripe) = &dataflow.source else {
            return vec![(name.to_string(), dataflow.table_name(name))];
        };
        let shared_file = matches!(self.sink_database(dataflow), SinkUrl::Database(DatabaseUrl::Sqlite(_)));
        stripe
            .tables
            .iter()
            .map(|object| {
                let table = if shared_file {
                    format!("{}_{object}", name.to_ascii_lowercase())
                } else {
                    object.clone()
                };
                (format!("{name}/{object}"), table)
            })
            .collect()
    }

    /// The format plugin called `name`: a `[plugins]` entry, a bundled format, or a path to a `.wasm` file.
    pub fn plugin_spec(&self, name: &str) -> Result<PluginSpec, ConfigError> {
        self.spec(name, bundled_format(name), BUNDLED_FORMATS)
    }

    /// The data template called `name`: a `[plugins]` entry, a bundled template, or a path to a `.wasm` file.
    pub fn template_spec(&self, name: &str) -> Result<PluginSpec, ConfigError> {
        self.spec(name, bundled_template(name), BUNDLED_TEMPLATES)
    }

    fn spec(&self, name: &str, bundled: Option<Bundled>, known: &[&str]) -> Result<PluginSpec, ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: self.path.clone(),
            line: None,
            key: Some(key),
            message,
        };
        let configured = self.plugins.get(name);
        let mut limits = Limits::default();
        if let Some(plugin) = configured {
            if let Some(mib) = plugin.memory_limit_mib {
                limits.memory = usize::try_from(mib << 20).map_err(|_| {
                    invalid(format!("plugins.{name}.memory_limit_mib"), "is too large".to_string())
                })?;
            }
            if let Some(timeout) = plugin.call_timeout {
                limits.call_timeout = timeout;
            }
        }
        let source = match (configured.and_then(|p| p.path.as_ref()), bundled) {
            (Some(path), _) => PluginSource::File(self.resolve(path)),
            (None, Some(bundled)) => PluginSource::Bundled(bundled),
            (None, None) if name.ends_with(".wasm") => PluginSource::File(PathBuf::from(name)),
            (None, None) => {
                return Err(invalid(
                    format!("plugins.{name}"),
                    format!(
                        "unknown plugin `{name}`: the bundled ones are {}; name a custom one in [plugins.{name}] with path = \"...wasm\"",
                        known.join(", ")
                    ),
                ));
            }
        };
        Ok(PluginSpec { name: name.to_string(), source, limits })
    }

    /// The dataflow called `name`.
    pub fn dataflow(&self, name: &str) -> Result<&DataflowConfig, ConfigError> {
        self.dataflows.get(name).ok_or_else(|| ConfigError::Invalid {
            path: self.path.clone(),
            line: None,
            key: None,
            message: format!(
                "no dataflow `{name}`; the dataflows are: {}",
                self.dataflows.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
    }
}

impl ConfigError {
    /// The message without the place.
    fn message(&self) -> String {
        match self {
            ConfigError::Invalid { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

impl DataflowConfig {
    /// The table a dataflow writes: its `sink.table`, else its name in lower case.
    pub fn table_name(&self, dataflow: &str) -> String {
        match (&self.sink.table, self.sink.kind, &self.sink.object) {
            (Some(table), _, _) => table.clone(),
            // What a Stripe sink keeps is the results of its requests, named after the object.
            (None, SinkKind::Stripe, Some(object)) => format!("stripe_{}", object.replace('/', "_")),
            _ => dataflow.to_ascii_lowercase(),
        }
    }

    /// How many objects a run loads at once into `sink` (see [`SinkConfig::parallelism`]).
    pub fn parallel_loads(&self, sink: &SinkUrl) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        match self.sink.kind {
            // Its parallelism is in the requests in flight, under one rate limit.
            SinkKind::Stripe => return 1,
            // The program's own sink is handed one object at a time.
            SinkKind::Custom => return 1,
            SinkKind::Tables => {}
        }
        match (sink, self.sink.mode) {
            (SinkUrl::Database(DatabaseUrl::Postgres(_)), WriteMode::Append) => {
                self.sink.parallelism.unwrap_or(cores.min(4)).max(1)
            }
            _ => 1,
        }
    }
}

impl FormatConfig {
    /// The options as the plugin contract hands them over: strings as they are, numbers and booleans as
    /// their TOML text, arrays and tables as JSON text.
    pub fn option_pairs(&self) -> Vec<(String, String)> {
        option_pairs(&self.options)
    }
}

impl TemplateConfig {
    /// The options as the plugin contract hands them over: strings as they are, numbers and booleans as
    /// their TOML text, arrays and tables as JSON text.
    pub fn option_pairs(&self) -> Vec<(String, String)> {
        option_pairs(&self.options)
    }
}

/// Options as the plugin contract hands them over: strings as they are, numbers and booleans as their
/// TOML text, arrays and tables as JSON text.
fn option_pairs(options: &toml::Table) -> Vec<(String, String)> {
    options.iter().map(|(key, value)| (key.clone(), option_text(value))).collect()
}

fn option_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(_) | toml::Value::Table(_) => {
            serde_json::to_string(value).expect("TOML values serialize as JSON")
        }
        other => other.to_string(),
    }
}

/// A dataflow's name starts with a letter and holds letters and digits only, as in the product Sluice
/// reproduces (it names tables and schemas).
pub fn check_dataflow_name(name: &str) -> Result<(), String> {
    let starts_with_letter = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if starts_with_letter && name.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(format!(
            "dataflow name `{name}` is not allowed: a name starts with a letter and holds letters and digits only"
        ))
    }
}

/// A table name is a plain SQL identifier, so it needs no quoting in any database.
fn check_table_name(name: &str) -> Result<(), String> {
    let starts_well = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if starts_well
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("_sluice")
    {
        Ok(())
    } else {
        Err(format!(
            "table name `{name}` is not allowed: a table name starts with a letter and holds letters, digits and `_` (names starting `_sluice` are Sluice's own)"
        ))
    }
}

/// What a Stripe source's dataflow may not have: it reads records, not files, and writes one table per
/// Stripe object, merged on `id`; as (key under the dataflow, message).
fn check_stripe_source(dataflow: &DataflowConfig, has_format: bool) -> Result<(), (&'static str, String)> {
    let sink = &dataflow.sink;
    let refused = if has_format {
        Some((".format", "a Stripe source reads records, not files: remove [format]"))
    } else if dataflow.template.is_some() {
        Some((".template", "a Stripe source's records go to tables as they are: remove [template]"))
    } else if sink.kind == SinkKind::Stripe {
        Some((".sink.type", "a Stripe source writes tables: from Stripe to Stripe is not a dataflow"))
    } else if sink.table.is_some() {
        Some((".sink.table", "a Stripe source's tables are named after its objects (source.tables)"))
    } else if sink.mode != WriteMode::Append || !sink.key.is_empty() {
        Some((".sink.mode", "a Stripe source merges each table on `id`; remove `mode` and `key`"))
    } else {
        None
    };
    match refused {
        Some((key, message)) => Err((key, message.to_string())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/etc/sluice/connector.toml")).map_err(|e| e.to_string())
    }

    const PEOPLE: &str = "[dataflows.People]\nsource = { type = \"local\", path = \"data\" }\nformat = { plugin = \"jsonl\" }\n";

    #[test]
    fn delta_locations_are_a_folder_or_a_bucket_prefix_reached_with_the_sinks_s3_access() {
        let config = parse(&format!(
            "[sink]\nurl = \"delta+s3://lake/sluice/tables/\"\ns3 = {{ region = \"eu-west-1\", role_arn = \"arn:aws:iam::1:role/w\" }}\n\n{PEOPLE}"
        ))
        .unwrap();
        let SinkUrl::Delta(DeltaRoot::S3 { bucket, prefix, access }) =
            config.sink_database(&config.dataflows["People"])
        else {
            panic!("an S3 location")
        };
        assert_eq!((bucket.as_str(), prefix.as_str()), ("lake", "sluice/tables"));
        assert_eq!(access.region.as_deref(), Some("eu-west-1"));
        assert_eq!(access.role_arn.as_deref(), Some("arn:aws:iam::1:role/w"));

        let config = parse(&format!("[sink]\nurl = \"delta+file://lake\"\n\n{PEOPLE}")).unwrap();
        assert_eq!(
            config.sink_database(&config.dataflows["People"]),
            SinkUrl::Delta(DeltaRoot::Folder(PathBuf::from("/etc/sluice/lake")))
        );
        assert_eq!(
            config.sink_database(&config.dataflows["People"]).to_string(),
            "delta+file:///etc/sluice/lake"
        );
    }

    #[test]
    fn a_bad_delta_location_or_s3_access_without_a_bucket_is_refused_naming_the_key() {
        let error = parse(&format!("[sink]\nurl = \"delta+s3://\"\n\n{PEOPLE}")).unwrap_err();
        assert!(error.contains("`sink.url`") && error.contains("names no bucket"), "{error}");
        let error = parse(&format!("[sink]\nurl = \"delta+gcs://b\"\n\n{PEOPLE}")).unwrap_err();
        assert!(error.contains("delta+s3://BUCKET/PREFIX"), "{error}");
        let error = parse(&format!(
            "{PEOPLE}sink = {{ url = \"sqlite://x.db\", s3 = {{ region = \"eu-west-1\" }} }}\n"
        ))
        .unwrap_err();
        assert!(
            error.contains("`dataflows.People.sink.s3`") && error.contains("belongs with a delta+s3:// url"),
            "{error}"
        );
        let error = parse(&format!("[sink]\nurl = \"delta+s3://b\"\ns3 = {{ regon = \"x\" }}\n\n{PEOPLE}"))
            .unwrap_err();
        assert!(error.contains("unknown field `regon`"), "{error}");
        let error =
            parse(&format!("{PEOPLE}sink = {{ url = \"sqlite://x.db\", partition_by = [\"country\"] }}\n"))
                .unwrap_err();
        assert!(
            error.contains("`dataflows.People.sink.partition_by`") && error.contains("is for Delta tables"),
            "{error}"
        );
    }

    #[test]
    fn a_notification_queue_is_checked_naming_its_key_and_line() {
        let orders = |notifications: &str| {
            format!(
                "[dataflows.Orders]\nformat = {{ plugin = \"csv\" }}\n[dataflows.Orders.source]\ntype = \"s3\"\nbucket = \"b\"\n\
                 notifications = {{ {notifications} }}\n"
            )
        };
        let config = parse(&orders(
            "queue_url = \"https://sqs.eu-west-1.amazonaws.com/1/q\", visibility_timeout = \"5m\"",
        ))
        .unwrap();
        let SourceConfig::S3(s3) = &config.dataflows["Orders"].source else { panic!("an S3 source") };
        let notifications = s3.notifications.as_ref().unwrap();
        assert_eq!(notifications.visibility_timeout(), Duration::from_secs(300));
        assert_eq!(notifications.wait_time(), Duration::from_secs(20));

        let refused = [
            (
                "queue_url = \"orders-events\"",
                "`dataflows.Orders.source.notifications.queue_url`",
                "is not a queue URL",
            ),
            (
                "queue_url = \"https://q\", visibility_timeout = \"13h\"",
                "visibility_timeout`",
                "from 1s to 12h",
            ),
            ("queue_url = \"https://q\", wait_time = \"30s\"", "wait_time`", "at most 20s"),
            ("queue_url = \"https://q\", wait = \"1s\"", "line 6", "unknown field `wait`"),
            (
                "endpoint = \"http://127.0.0.1:9324\"",
                "`dataflows.Orders.source`",
                "missing field `queue_url`",
            ),
        ];
        for (notifications, key, why) in refused {
            let error = parse(&orders(notifications)).unwrap_err();
            assert!(error.contains(key) && error.contains(why), "{notifications}: {error}");
        }
    }
}
