//! Running a format plugin over one file.

use super::sandbox::{Sandbox, call_failure, deadline_ticks, new_store};
use super::{CompileSource, Limits, PluginError, identity};
use crate::batch::RecordBatch;
use std::time::Duration;
use wasmtime::Store;
use wasmtime::component::ResourceAny;

/// The host side of the `format` world of `wit/sluice.wit`.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "format",
    });
}

use bindings::sluice::plugin::types::{FatalError, Output};
use bindings::{Format, FormatPre};

/// A loaded format plugin. Opening a file with it costs one instantiation, not a compilation.
#[derive(Clone)]
pub struct FormatPlugin {
    pub(super) name: String,
    pub(super) pre: FormatPre<Sandbox>,
    /// The SHA-256 of the component, in hex.
    pub(super) digest: String,
    pub(super) limits: Limits,
    /// Options the plugin starts from (a bundled `tsv` is `csv` with a tab delimiter).
    pub(super) default_options: &'static [(&'static str, &'static str)],
    pub(super) compiled_from: CompileSource,
    pub(super) compile_time: Duration,
}

/// A row the plugin refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedRow {
    /// The 1-based line of the file the row starts on.
    pub line: u64,
    /// Why it was refused.
    pub reason: String,
    /// Up to 1 KiB of the row's raw text.
    pub raw: String,
}

impl From<bindings::sluice::plugin::types::RejectedRow> for RejectedRow {
    /// A reject as it crossed the component boundary (from a parser or a template).
    fn from(wire: bindings::sluice::plugin::types::RejectedRow) -> Self {
        RejectedRow { line: wire.line, reason: wire.reason, raw: wire.raw }
    }
}

/// What one call into a parser produced.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The batches completed.
    pub batches: Vec<RecordBatch>,
    /// The rows refused.
    pub rejects: Vec<RejectedRow>,
}

impl FormatPlugin {
    /// The plugin's name in the configuration.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What this plugin is, as a run's reading of an object depends on it: its name, the SHA-256 of its
    /// component, and its limits.
    pub fn identity(&self) -> String {
        identity(&self.name, &self.digest, self.limits)
    }

    /// Whether the compiled plugin came from the on-disk cache, and how long loading it took.
    pub fn compiled_from(&self) -> (CompileSource, Duration) {
        (self.compiled_from, self.compile_time)
    }

    /// Starts parsing one file, called `object` in messages, with the dataflow's options.
    pub fn open(&self, object: &str, options: &[(String, String)]) -> Result<FileParse, PluginError> {
        let mut parse = FileParse {
            plugin: self.name.clone(),
            object: object.to_string(),
            limits: self.limits,
            deadline_ticks: deadline_ticks(self.limits),
            store: new_store(self.pre.engine(), self.limits),
            instance: None,
            parser: None,
            completed_before_failure: Parsed::default(),
        };
        parse.store.set_epoch_deadline(parse.deadline_ticks);
        let instance = self.pre.instantiate(&mut parse.store).map_err(|e| parse.failure(e))?;
        let options = with_defaults(self.default_options, options);
        parse.store.set_epoch_deadline(parse.deadline_ticks);
        let created = instance
            .sluice_plugin_parser()
            .file_parser()
            .call_create(&mut parse.store, &options)
            .map_err(|e| parse.failure(e))?;
        // `create` has completed nothing, so only the error itself matters.
        parse.parser = Some(created.map_err(|fatal| parse.format_error(fatal.line, fatal.message))?);
        parse.instance = Some(instance);
        Ok(parse)
    }
}

/// One file being parsed: a store and an instance of its own, fed chunk by chunk.
pub struct FileParse {
    plugin: String,
    object: String,
    limits: Limits,
    deadline_ticks: u64,
    store: Store<Sandbox>,
    instance: Option<Format>,
    parser: Option<ResourceAny>,
    /// What the parser completed before a fatal error, until taken.
    completed_before_failure: Parsed,
}

impl FileParse {
    /// Feeds the next chunk of the file. Chunks may be cut anywhere.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Parsed, PluginError> {
        let (Some(instance), Some(parser)) = (&self.instance, self.parser) else {
            return Err(self.used_after_failure());
        };
        self.store.set_epoch_deadline(self.deadline_ticks);
        let result = instance.sluice_plugin_parser().file_parser().call_feed(&mut self.store, parser, chunk);
        self.output(result)
    }

    /// Ends the file and returns what the parser still held.
    pub fn finish(&mut self) -> Result<Parsed, PluginError> {
        let (Some(instance), Some(parser)) = (&self.instance, self.parser) else {
            return Err(self.used_after_failure());
        };
        self.store.set_epoch_deadline(self.deadline_ticks);
        let result = instance.sluice_plugin_parser().file_parser().call_finish(&mut self.store, parser);
        self.output(result)
    }

    /// After a call failed because the file cannot be read as this format: the records and rejects the
    /// parser completed before the error, which are as good as any others.
    pub fn take_completed_before_failure(&mut self) -> Parsed {
        std::mem::take(&mut self.completed_before_failure)
    }

    fn used_after_failure(&self) -> PluginError {
        PluginError::Trap {
            plugin: self.plugin.clone(),
            object: self.object.clone(),
            message: "the parser was used after it failed".into(),
            stderr: None,
        }
    }

    fn output(
        &mut self,
        result: wasmtime::Result<Result<Output, FatalError>>,
    ) -> Result<Parsed, PluginError> {
        let output = match result {
            Ok(Ok(output)) => output,
            Ok(Err(FatalError { line, message, completed })) => {
                self.completed_before_failure = self.convert(completed)?;
                return Err(self.format_error(line, message));
            }
            Err(error) => {
                // A trapped instance may be in any state: it is never called again.
                self.instance = None;
                self.parser = None;
                return Err(self.failure(error));
            }
        };
        self.convert(output)
    }

    fn convert(&self, output: Output) -> Result<Parsed, PluginError> {
        let batches =
            output.batches.into_iter().map(RecordBatch::from_wire).collect::<Result<Vec<_>, _>>().map_err(
                |message| PluginError::Contract {
                    plugin: self.plugin.clone(),
                    object: self.object.clone(),
                    message,
                },
            )?;
        let rejects = output.rejects.into_iter().map(RejectedRow::from).collect();
        Ok(Parsed { batches, rejects })
    }

    fn format_error(&self, line: u64, message: String) -> PluginError {
        PluginError::Format { plugin: self.plugin.clone(), object: self.object.clone(), line, message }
    }

    fn failure(&self, error: wasmtime::Error) -> PluginError {
        call_failure(&self.store, self.limits, &self.plugin, &self.object, error)
    }
}

/// A plugin's own default options, then the dataflow's (which win, coming later).
pub(super) fn with_defaults(
    defaults: &[(&'static str, &'static str)],
    options: &[(String, String)],
) -> Vec<(String, String)> {
    defaults.iter().map(|(k, v)| (k.to_string(), v.to_string())).chain(options.iter().cloned()).collect()
}
