//! Running a format plugin over one file.

use super::bindings::format::sluice::plugin::types::{FatalError, Output};
use super::bindings::format::{Format, FormatPre};
use super::bindings::ranged::{RangedFormat, RangedFormatPre};
use super::bindings::typed::sluice::plugin::spans::{SpanFatalError, SpanOutput};
use super::bindings::typed::{TypedFormat, TypedFormatPre};
use super::bindings::typed_ranged::sluice::plugin::columns::{TypedFatalError, TypedOutput};
use super::bindings::typed_ranged::{TypedRangedFormat, TypedRangedFormatPre};
use super::ranged::{RangeRead, Served};
use super::sandbox::{Sandbox, call_failure, deadline_ticks, new_store};
use super::wire::{batch_from_span_wire, batch_from_typed_wire, batch_from_wire, rejected_from_wire};
use super::{CompileSource, Limits, PluginError, identity};
use crate::batch::{RecordBatch, RejectStage, RejectedRow};
use std::time::Duration;
use wasmtime::Store;
use wasmtime::component::ResourceAny;

/// How a format plugin's instances are made, by the world it implements.
#[derive(Clone)]
pub(super) enum ParserPre {
    /// `format`: fed its file as a stream.
    Stream(FormatPre<Sandbox>),
    /// `typed-format` (since 1.4.0): fed its file as a stream, and hands text over as spans of it.
    Spans(TypedFormatPre<Sandbox>),
    /// `ranged-format` (since 1.2.0): reads its file by ranges.
    Ranged(RangedFormatPre<Sandbox>),
    /// `typed-ranged-format` (since 1.3.0): reads its file by ranges, and hands over typed columns.
    TypedRanged(TypedRangedFormatPre<Sandbox>),
}

/// A loaded format plugin. Opening a file with it costs one instantiation, not a compilation.
#[derive(Clone)]
pub struct FormatPlugin {
    pub(super) name: String,
    pub(super) pre: ParserPre,
    /// The SHA-256 of the component, in hex.
    pub(super) digest: String,
    pub(super) limits: Limits,
    /// Options the plugin starts from (a bundled `tsv` is `csv` with a tab delimiter).
    pub(super) default_options: &'static [(&'static str, &'static str)],
    pub(super) compiled_from: CompileSource,
    pub(super) compile_time: Duration,
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

    /// Whether the plugin reads its file by ranges (the `ranged-format` or `typed-ranged-format` world), opened with
    /// [`FormatPlugin::open_ranged`], rather than fed it as a stream ([`FormatPlugin::open`]).
    pub fn reads_by_range(&self) -> bool {
        matches!(self.pre, ParserPre::Ranged(_) | ParserPre::TypedRanged(_))
    }

    /// Starts parsing one file, called `object` in messages, with the dataflow's options; its bytes are
    /// then fed to [`FileParse::feed`]. For a plugin that reads by ranges, see [`FormatPlugin::open_ranged`].
    pub fn open(&self, object: &str, options: &[(String, String)]) -> Result<FileParse, PluginError> {
        let engine = match &self.pre {
            ParserPre::Stream(pre) => pre.engine(),
            ParserPre::Spans(pre) => pre.engine(),
            ParserPre::Ranged(_) | ParserPre::TypedRanged(_) => {
                return Err(self.misused(object, "it reads its files by ranges, and was handed a stream"));
            }
        };
        let mut parse = self.new_parse(object, engine);
        let options = with_defaults(self.default_options, options);
        parse.store.set_epoch_deadline(parse.deadline_ticks);
        // `create` has completed nothing, so only an error's line and message matter.
        let (instance, created) = match &self.pre {
            ParserPre::Stream(pre) => {
                let instance = pre.instantiate(&mut parse.store).map_err(|e| parse.failure(e))?;
                parse.store.set_epoch_deadline(parse.deadline_ticks);
                let created = instance
                    .sluice_plugin_parser()
                    .file_parser()
                    .call_create(&mut parse.store, &options)
                    .map_err(|e| parse.failure(e))?
                    .map_err(|fatal| (fatal.line, fatal.message));
                (Instance::Stream(instance), created)
            }
            ParserPre::Spans(pre) => {
                let instance = pre.instantiate(&mut parse.store).map_err(|e| parse.failure(e))?;
                parse.store.set_epoch_deadline(parse.deadline_ticks);
                let created = instance
                    .sluice_plugin_typed_parser()
                    .file_parser()
                    .call_create(&mut parse.store, &options)
                    .map_err(|e| parse.failure(e))?
                    .map_err(|fatal| (fatal.line, fatal.message));
                (Instance::Spans(instance), created)
            }
            ParserPre::Ranged(_) | ParserPre::TypedRanged(_) => unreachable!("refused above"),
        };
        parse.parser = Some(created.map_err(|(line, message)| parse.format_error(line, message))?);
        parse.instance = Some(instance);
        Ok(parse)
    }

    /// Starts reading one file by ranges from `input`, for a plugin that [reads by
    /// range](FormatPlugin::reads_by_range); its records then come from [`FileParse::next_records`].
    pub fn open_ranged(
        &self,
        object: &str,
        options: &[(String, String)],
        input: Box<dyn RangeRead>,
    ) -> Result<FileParse, PluginError> {
        let engine = match &self.pre {
            ParserPre::Ranged(pre) => pre.engine(),
            ParserPre::TypedRanged(pre) => pre.engine(),
            ParserPre::Stream(_) | ParserPre::Spans(_) => {
                return Err(
                    self.misused(object, "it reads its files as a stream, and was asked to read by ranges")
                );
            }
        };
        let mut parse = self.new_parse(object, engine);
        parse.store.data_mut().input = Some(Served::new(input));
        let options = with_defaults(self.default_options, options);
        parse.store.set_epoch_deadline(parse.deadline_ticks);
        // `create` has completed nothing, so only an error's line and message matter.
        let (instance, created) = match &self.pre {
            ParserPre::Ranged(pre) => {
                let instance = pre.instantiate(&mut parse.store).map_err(|e| parse.failure(e))?;
                parse.store.set_epoch_deadline(parse.deadline_ticks);
                let created = instance
                    .sluice_plugin_ranged_parser()
                    .file_reader()
                    .call_create(&mut parse.store, &options)
                    .map_err(|e| parse.failure(e))?
                    .map_err(|fatal| (fatal.line, fatal.message));
                (Instance::Ranged(instance), created)
            }
            ParserPre::TypedRanged(pre) => {
                let instance = pre.instantiate(&mut parse.store).map_err(|e| parse.failure(e))?;
                parse.store.set_epoch_deadline(parse.deadline_ticks);
                let created = instance
                    .sluice_plugin_typed_ranged_parser()
                    .file_reader()
                    .call_create(&mut parse.store, &options)
                    .map_err(|e| parse.failure(e))?
                    .map_err(|fatal| (fatal.line, fatal.message));
                (Instance::TypedRanged(instance), created)
            }
            ParserPre::Stream(_) | ParserPre::Spans(_) => unreachable!("refused above"),
        };
        parse.parser = Some(created.map_err(|(line, message)| parse.format_error(line, message))?);
        parse.instance = Some(instance);
        Ok(parse)
    }

    fn new_parse(&self, object: &str, engine: &wasmtime::Engine) -> FileParse {
        FileParse {
            plugin: self.name.clone(),
            object: object.to_string(),
            limits: self.limits,
            deadline_ticks: deadline_ticks(self.limits),
            store: new_store(engine, self.limits),
            kept: Vec::new(),
            instance: None,
            parser: None,
            completed_before_failure: Parsed::default(),
        }
    }

    fn misused(&self, object: &str, message: &str) -> PluginError {
        PluginError::Contract {
            plugin: self.name.clone(),
            object: object.to_string(),
            message: message.into(),
        }
    }
}

/// A plugin instance, by the world it implements.
enum Instance {
    Stream(Format),
    Spans(TypedFormat),
    Ranged(RangedFormat),
    TypedRanged(TypedRangedFormat),
}

/// One file being parsed: a store and an instance of its own, fed chunk by chunk (a stream parser) or
/// asked for its next records (a ranged one).
pub struct FileParse {
    plugin: String,
    object: String,
    limits: Limits,
    deadline_ticks: u64,
    store: Store<Sandbox>,
    /// For a span parser (contract 1.4.0): the bytes it kept at the end of its last call, which begin the
    /// window its next call's spans index.
    kept: Vec<u8>,
    instance: Option<Instance>,
    parser: Option<ResourceAny>,
    /// What the parser completed before a fatal error, until taken.
    completed_before_failure: Parsed,
}

impl FileParse {
    /// Feeds the next chunk of the file. Chunks may be cut anywhere.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Parsed, PluginError> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        match (&self.instance, self.parser) {
            (Some(Instance::Stream(instance)), Some(parser)) => {
                let result =
                    instance.sluice_plugin_parser().file_parser().call_feed(&mut self.store, parser, chunk);
                self.output(result)
            }
            (Some(Instance::Spans(instance)), Some(parser)) => {
                let mut window = Vec::with_capacity(self.kept.len() + chunk.len());
                window.extend_from_slice(&self.kept);
                window.extend_from_slice(chunk);
                let result = instance.sluice_plugin_typed_parser().file_parser().call_feed(
                    &mut self.store,
                    parser,
                    chunk,
                );
                self.span_output(result, window)
            }
            _ => Err(self.used_after_failure()),
        }
    }

    /// Ends the file and returns what the parser still held.
    pub fn finish(&mut self) -> Result<Parsed, PluginError> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        match (&self.instance, self.parser) {
            (Some(Instance::Stream(instance)), Some(parser)) => {
                let result =
                    instance.sluice_plugin_parser().file_parser().call_finish(&mut self.store, parser);
                self.output(result)
            }
            (Some(Instance::Spans(instance)), Some(parser)) => {
                let result =
                    instance.sluice_plugin_typed_parser().file_parser().call_finish(&mut self.store, parser);
                let window = std::mem::take(&mut self.kept);
                self.span_output(result, window)
            }
            _ => Err(self.used_after_failure()),
        }
    }

    /// A ranged parser's next records; `None` once it has read the file to its end.
    pub fn next_records(&mut self) -> Result<Option<Parsed>, PluginError> {
        let Some(parser) = self.parser else { return Err(self.used_after_failure()) };
        self.store.set_epoch_deadline(self.deadline_ticks);
        match &self.instance {
            Some(Instance::Ranged(instance)) => {
                let result =
                    instance.sluice_plugin_ranged_parser().file_reader().call_next(&mut self.store, parser);
                match result {
                    Ok(Ok(None)) => Ok(None),
                    Ok(Ok(Some(output))) => self.output(Ok(Ok(output))).map(Some),
                    Ok(Err(fatal)) => self.output(Ok(Err(fatal))).map(Some),
                    Err(error) => self.output(Err(error)).map(Some),
                }
            }
            Some(Instance::TypedRanged(instance)) => {
                let result = instance
                    .sluice_plugin_typed_ranged_parser()
                    .file_reader()
                    .call_next(&mut self.store, parser);
                match result {
                    Ok(Ok(None)) => Ok(None),
                    Ok(Ok(Some(output))) => self.convert_typed(output).map(Some),
                    Ok(Err(TypedFatalError { line, message, completed })) => {
                        self.completed_before_failure = self.convert_typed(completed)?;
                        Err(self.format_error(line, message))
                    }
                    Err(error) => self.output(Err(error)).map(Some),
                }
            }
            _ => Err(self.used_after_failure()),
        }
    }

    /// Bytes a ranged parser has read of its file so far.
    pub fn bytes_read(&self) -> u64 {
        self.store.data().input.as_ref().map_or(0, Served::served)
    }

    /// Where the plugin gave up because a read of its file failed: why the read failed. Such an object
    /// failed for its source, not its bytes.
    pub fn read_failure(&mut self) -> Option<std::io::Error> {
        self.store.data_mut().input.as_mut().and_then(Served::take_failure)
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
        let batches = output.batches.into_iter().map(batch_from_wire).collect::<Result<Vec<_>, _>>();
        let rejects = output.rejects.into_iter().map(|r| rejected_from_wire(r, RejectStage::Parse)).collect();
        Ok(Parsed { batches: batches.map_err(|message| self.malformed(message))?, rejects })
    }

    /// As [`FileParse::output`], for a span parser (contract 1.4.0).
    fn span_output(
        &mut self,
        result: wasmtime::Result<Result<SpanOutput, SpanFatalError>>,
        window: Vec<u8>,
    ) -> Result<Parsed, PluginError> {
        match result {
            Ok(Ok(output)) => self.convert_spans(output, window),
            Ok(Err(SpanFatalError { line, message, completed })) => {
                self.completed_before_failure = self.convert_spans(completed, window)?;
                Err(self.format_error(line, message))
            }
            Err(error) => {
                self.instance = None;
                self.parser = None;
                Err(self.failure(error))
            }
        }
    }

    /// As [`FileParse::convert`], for span batches (contract 1.4.0), whose spans index `window`, which
    /// their columns share; keeps of it the bytes the parser said it holds on to, for the next call.
    fn convert_spans(&mut self, output: SpanOutput, window: Vec<u8>) -> Result<Parsed, PluginError> {
        let keep = output.keep as usize;
        if keep > window.len() {
            return Err(
                self.malformed(format!("it keeps {keep} bytes of a window of {} bytes", window.len()))
            );
        }
        self.kept = window[window.len() - keep..].to_vec();
        let window = std::sync::Arc::new(window);
        let batches = output
            .batches
            .into_iter()
            .map(|batch| batch_from_span_wire(batch, &window))
            .collect::<Result<Vec<_>, _>>();
        let rejects = output.rejects.into_iter().map(|r| rejected_from_wire(r, RejectStage::Parse)).collect();
        Ok(Parsed { batches: batches.map_err(|message| self.malformed(message))?, rejects })
    }

    /// As [`FileParse::convert`], for typed batches (contract 1.3.0).
    fn convert_typed(&self, output: TypedOutput) -> Result<Parsed, PluginError> {
        let batches = output.batches.into_iter().map(batch_from_typed_wire).collect::<Result<Vec<_>, _>>();
        let rejects = output.rejects.into_iter().map(|r| rejected_from_wire(r, RejectStage::Parse)).collect();
        Ok(Parsed { batches: batches.map_err(|message| self.malformed(message))?, rejects })
    }

    fn malformed(&self, message: String) -> PluginError {
        PluginError::Contract { plugin: self.plugin.clone(), object: self.object.clone(), message }
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
