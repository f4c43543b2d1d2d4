//! Sources and sinks written in Rust by the program that embeds Sluice, by the names dataflows call them
//! (`source = { type = "custom", name }`, `sink = { type = "custom", name }`).

use crate::config::{DataflowConfig, SinkKind, SourceConfig};
use crate::sink::{CustomSink, RecordSink, SinkError, TableSink};
use crate::source::{Source, SourceError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The custom sources and sinks runs may use. The `sluice` binary's is empty.
#[derive(Clone, Default)]
pub struct Registry {
    sources: BTreeMap<String, Arc<dyn Source>>,
    sinks: BTreeMap<String, Arc<dyn RecordSink>>,
    /// A sink every dataflow's records go to instead of its own (how [`crate::embed::Sluice::pull`]
    /// takes them).
    instead: Option<Arc<dyn RecordSink>>,
}

/// The registry of runs whose program registered nothing.
pub(super) static EMPTY: Registry = Registry::new();

impl Registry {
    /// A registry of nothing.
    pub const fn new() -> Registry {
        Registry { sources: BTreeMap::new(), sinks: BTreeMap::new(), instead: None }
    }

    /// Registers `source` as `name`, replacing a source registered as `name` before.
    pub fn register_source(&mut self, name: impl Into<String>, source: Arc<dyn Source>) {
        self.sources.insert(name.into(), source);
    }

    /// Registers `sink` as `name`, replacing a sink registered as `name` before.
    pub fn register_sink(&mut self, name: impl Into<String>, sink: Arc<dyn RecordSink>) {
        self.sinks.insert(name.into(), sink);
    }

    /// This registry, with every dataflow's records going to `sink` instead of the dataflow's own sink.
    pub(crate) fn sending_to(&self, sink: Arc<dyn RecordSink>) -> Registry {
        Registry { instead: Some(sink), ..self.clone() }
    }

    /// The registered source a custom source names; `None` for another kind of source.
    pub(super) fn source(&self, dataflow: &DataflowConfig) -> Option<Result<Arc<dyn Source>, SourceError>> {
        let SourceConfig::Custom(custom) = &dataflow.source else { return None };
        Some(self.sources.get(&custom.name).cloned().ok_or_else(|| SourceError::Setup {
            source_name: format!("custom source `{}`", custom.name),
            message: unregistered("source", &custom.name, self.sources.keys()),
        }))
    }

    /// The sink `name`'s records go to where it is not a database's or Stripe's: the one records are
    /// sent to instead, or the registered sink a custom sink names.
    pub(super) fn sink(
        &self,
        name: &str,
        dataflow: &DataflowConfig,
    ) -> Option<Result<Box<dyn TableSink>, SinkError>> {
        if let Some(instead) = &self.instead {
            return Some(Ok(Box::new(CustomSink::new(instead.clone(), "pull", name))));
        }
        if dataflow.sink.kind != SinkKind::Custom {
            return None;
        }
        let registered = dataflow.sink.name.as_deref().unwrap_or_default();
        Some(match self.sinks.get(registered) {
            Some(sink) => Ok(Box::new(CustomSink::new(sink.clone(), registered, name))),
            None => Err(SinkError::table(
                registered.to_string(),
                unregistered("sink", registered, self.sinks.keys()),
            )),
        })
    }
}

/// Why a custom source or sink named `name` is not there.
fn unregistered<'a>(what: &str, name: &str, registered: impl Iterator<Item = &'a String>) -> String {
    let registered: Vec<&str> = registered.map(String::as_str).collect();
    let known = match registered.is_empty() {
        true => "none is registered".to_string(),
        false => format!("the registered ones are {}", registered.join(", ")),
    };
    format!(
        "no {what} is registered as `{name}` ({known}): a custom {what} is registered by the program that embeds Sluice (`Sluice::register_{what}`), and the `sluice` binary registers none"
    )
}
