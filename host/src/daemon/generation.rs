//! A generation: one configuration with the plugins compiled from it and each dataflow's timetable, put in
//! force whole. A run keeps the generation it started with to its end, so a reload never changes a run
//! half-way.

use super::schedule::Timetable;
use crate::config::{Config, SourceConfig};
use crate::plugin::{PluginHost, PluginSet, PluginSource};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::SystemTime;

pub(crate) struct Generation {
    pub config: Config,
    pub plugins: PluginSet,
    pub timetables: BTreeMap<String, Timetable>,
    /// Counts reloads that were put in force, from 1.
    pub number: u64,
    pub loaded_at: SystemTime,
}

impl Generation {
    /// Compiles the plugins `config` names (from the cache where they are unchanged). A plugin that does not
    /// load is a problem; where `before` had it loaded, that one keeps serving.
    pub fn load(
        host: &PluginHost,
        config: Config,
        before: Option<&Generation>,
        number: u64,
    ) -> (Generation, Vec<String>) {
        let mut problems = Vec::new();
        let mut plugins = PluginSet::default();
        let (formats, templates) = plugin_names(&config);
        for name in formats {
            let loaded = config
                .plugin_spec(&name)
                .map_err(|e| e.to_string())
                .and_then(|spec| host.load_format(&spec).map_err(|e| e.to_string()));
            let before = before.and_then(|b| b.plugins.format(&name));
            if let Some(plugin) = loaded_or_before(&name, loaded, before, &mut problems) {
                plugins.insert_format(name, plugin);
            }
        }
        for name in templates {
            let loaded = config
                .template_spec(&name)
                .map_err(|e| e.to_string())
                .and_then(|spec| host.load_template(&spec).map_err(|e| e.to_string()));
            let before = before.and_then(|b| b.plugins.template(&name));
            if let Some(plugin) = loaded_or_before(&name, loaded, before, &mut problems) {
                plugins.insert_template(name, plugin);
            }
        }
        let mut timetables = BTreeMap::new();
        for (name, dataflow) in &config.dataflows {
            match Timetable::of(&config, name, dataflow) {
                Ok(timetable) => {
                    timetables.insert(name.clone(), timetable);
                }
                Err(error) => {
                    problems.push(format!("dataflow `{name}`: its schedule cannot be kept: {error}"))
                }
            }
        }
        (Generation { config, plugins, timetables, number, loaded_at: SystemTime::now() }, problems)
    }

    /// The files a change of which reloads: the configuration and every plugin loaded from a `.wasm` file.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.config.path().to_path_buf()];
        let (formats, templates) = plugin_names(&self.config);
        let specs = formats
            .iter()
            .filter_map(|name| self.config.plugin_spec(name).ok())
            .chain(templates.iter().filter_map(|name| self.config.template_spec(name).ok()));
        for spec in specs {
            if let PluginSource::File(path) = spec.source {
                files.push(path);
            }
        }
        files
    }
}

/// The plugin that `loaded`; where it did not, the problem, and the one loaded `before` if there was one.
fn loaded_or_before<P: Clone>(
    name: &str,
    loaded: Result<P, String>,
    before: Option<&P>,
    problems: &mut Vec<String>,
) -> Option<P> {
    match (loaded, before) {
        (Ok(plugin), _) => Some(plugin),
        (Err(error), Some(plugin)) => {
            problems.push(format!("{error}; the version loaded before keeps serving"));
            Some(plugin.clone())
        }
        (Err(error), None) => {
            problems.push(format!("{error}; the dataflows that use plugin `{name}` fail until it loads"));
            None
        }
    }
}

/// The format plugins and the templates the dataflows of `config` use, by name.
fn plugin_names(config: &Config) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut formats = BTreeSet::new();
    let mut templates = BTreeSet::new();
    for dataflow in config.dataflows.values() {
        if !matches!(dataflow.source, SourceConfig::Stripe(_)) {
            formats.insert(dataflow.file_format().plugin.clone());
        }
        if let Some(template) = &dataflow.template {
            templates.insert(template.plugin.clone());
        }
    }
    (formats, templates)
}
