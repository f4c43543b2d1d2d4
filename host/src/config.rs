//! `connector.toml`: the plugins and dataflows Sluice runs, read and checked.
//!
//! ```toml
//! [plugins.fixedwidth]              # a custom format plugin, by path (relative to this file)
//! path = "plugins/fixedwidth.wasm"
//! memory_limit_mib = 64             # default 256
//! call_timeout = "5s"               # default 30s
//!
//! [plugins.csv]                     # a bundled plugin, with other limits
//! memory_limit_mib = 512
//!
//! [dataflows.Orders.format]
//! plugin = "csv"
//! options = { delimiter = ";", null_values = ["", "NA"] }
//! ```

use crate::plugin::{BUNDLED_FORMATS, Limits, PluginSource, PluginSpec, bundled_format};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration error, with where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}{message}", located(path))]
    Invalid { path: PathBuf, message: String },
}

/// "path: " before a message about a file; nothing where no file was read.
fn located(path: &Path) -> String {
    if path.as_os_str().is_empty() { String::new() } else { format!("{}: ", path.display()) }
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

/// `[dataflows.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataflowConfig {
    /// How the dataflow's files are read.
    pub format: FormatConfig,
}

/// `[dataflows.NAME.format]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatConfig {
    /// A bundled format (`csv`, `tsv`, `json`, `jsonl`), a `[plugins]` name, or a path to a `.wasm` file.
    pub plugin: String,
    /// Handed to the plugin; see each plugin's documentation.
    #[serde(default)]
    pub options: toml::Table,
}

fn duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration like \"30s\": {e}")))
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Checks configuration text; `path` names it in messages and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { path: path.to_path_buf(), message };
        let mut config: Config =
            toml::from_str(text).map_err(|e| invalid(e.to_string().trim_end().to_string()))?;
        config.path = path.to_path_buf();
        config.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for name in config.dataflows.keys() {
            check_dataflow_name(name).map_err(invalid)?;
        }
        Ok(config)
    }

    /// The plugin called `name`: a `[plugins]` entry, a bundled format, or a path to a `.wasm` file.
    pub fn plugin_spec(&self, name: &str) -> Result<PluginSpec, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { path: self.path.clone(), message };
        let configured = self.plugins.get(name);
        let mut limits = Limits::default();
        if let Some(plugin) = configured {
            if let Some(mib) = plugin.memory_limit_mib {
                limits.memory = usize::try_from(mib << 20)
                    .map_err(|_| invalid(format!("plugins.{name}.memory_limit_mib is too large")))?;
            }
            if let Some(timeout) = plugin.call_timeout {
                limits.call_timeout = timeout;
            }
        }
        let source = match (configured.and_then(|p| p.path.as_ref()), bundled_format(name)) {
            (Some(path), _) => PluginSource::File(self.base_dir.join(path)),
            (None, Some(bundled)) => PluginSource::Bundled(bundled),
            (None, None) if name.ends_with(".wasm") => PluginSource::File(PathBuf::from(name)),
            (None, None) => {
                return Err(invalid(format!(
                    "unknown plugin `{name}`: the bundled ones are {}; name a custom one in [plugins.{name}] with path = \"...wasm\"",
                    BUNDLED_FORMATS.join(", ")
                )));
            }
        };
        Ok(PluginSpec { name: name.to_string(), source, limits })
    }

    /// The dataflow called `name`.
    pub fn dataflow(&self, name: &str) -> Result<&DataflowConfig, ConfigError> {
        self.dataflows.get(name).ok_or_else(|| ConfigError::Invalid {
            path: self.path.clone(),
            message: format!(
                "no dataflow `{name}`; the dataflows are: {}",
                self.dataflows.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
    }
}

impl FormatConfig {
    /// The options as the plugin contract hands them over: strings as they are, numbers and booleans as
    /// their TOML text, arrays and tables as JSON text.
    pub fn option_pairs(&self) -> Vec<(String, String)> {
        self.options.iter().map(|(key, value)| (key.clone(), option_text(value))).collect()
    }
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
