//! The plugin host: loads plugins (WebAssembly components: format plugins and data templates) and runs
//! them sandboxed.
//!
//! - [`PluginHost`] owns the process's one wasmtime engine, the epoch ticker behind time limits, the linker
//!   and the on-disk cache of compiled components.
//! - [`PluginHost::load_format`] and [`PluginHost::load_template`] compile (or load from the cache) and
//!   check one plugin, giving a [`FormatPlugin`] or a [`TemplatePlugin`], cheap to keep and to share
//!   between threads.
//! - [`FormatPlugin::open`] starts a [`FileParse`] for one file fed as a stream, and
//!   [`FormatPlugin::open_ranged`] one for a file read by ranges ([`RangeRead`], contract 1.2.0, and
//!   since 1.3.0 handing over typed columns);
//!   [`TemplatePlugin::open`] starts a [`TemplateRun`]:
//!   a fresh store and instance each, so whatever one file does to a plugin (a trap, a runaway loop,
//!   exhausted memory) fails that file alone.

mod bindings;
mod bundled;
mod cache;
mod contract;
mod engine;
mod format;
mod inspect;
mod ranged;
mod sandbox;
mod template;
mod wire;

pub use bundled::{BUNDLED_FORMATS, BUNDLED_TEMPLATES, Bundled, bundled_format, bundled_template};
pub use cache::{CompileSource, default_cache_dir};
pub use contract::{CONTRACT_VERSION, ContractVersion, World};
// Rejected rows are the batch's (plain data that sinks keep); named here too, beside `Parsed`, as the
// embedding API has always named them.
pub use crate::batch::{RejectStage, RejectedRow};
pub use format::{FileParse, FormatPlugin, Parsed};
pub use inspect::{About, Import, Inspection};
pub use ranged::{MAX_READ, RangeRead};
pub use template::{TemplatePlugin, TemplateRun, Templated};

use cache::ComponentCache;
// The wire types of each contract version, as `wire` takes them apart.
use bindings::format::sluice::plugin::types as format_wire;
use bindings::typed::sluice::plugin::spans as span_wire;
use bindings::typed_ranged::sluice::plugin::columns as typed_wire;
use engine::EpochTicker;
use sandbox::Sandbox;
use sha2::Digest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre, Linker};

/// Imports a plugin may not have: a parser reads the bytes it is fed and has no business with files or
/// the network. (The context behind the imports it may have grants nothing either; see `Sandbox`.)
const FORBIDDEN_IMPORTS: &[&str] = &["wasi:filesystem/", "wasi:sockets/", "wasi:http/"];

/// Default memory cap of one plugin instance.
pub const DEFAULT_MEMORY_LIMIT: usize = 256 << 20;
/// Default time cap of one call into a plugin (one chunk fed, or the end of a file).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The limits one plugin runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most linear memory one instance may have, in bytes.
    pub memory: usize,
    /// The longest one call may run.
    pub call_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory: DEFAULT_MEMORY_LIMIT, call_timeout: DEFAULT_CALL_TIMEOUT }
    }
}

/// Where a plugin's component comes from.
#[derive(Clone, Debug)]
pub enum PluginSource {
    /// Built into the binary.
    Bundled(Bundled),
    /// A `.wasm` file.
    File(PathBuf),
}

/// Everything needed to load one plugin.
#[derive(Clone, Debug)]
pub struct PluginSpec {
    /// The plugin's name in `connector.toml`, used in every message about it.
    pub name: String,
    /// Where its component comes from.
    pub source: PluginSource,
    /// The limits it runs under.
    pub limits: Limits,
}

/// Why a plugin could not be loaded, or failed on a file. Every variant names the plugin (by its name in
/// `connector.toml`) and, once a file is being read, the object.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The component could not be read, compiled, linked or checked against its world.
    #[error("plugin `{plugin}` could not be loaded: {reason}")]
    Load {
        /// The plugin's name.
        plugin: String,
        /// Why, in words a plugin author can act on.
        reason: String,
    },
    /// The file cannot be read as this format (the plugin said so).
    #[error("plugin `{plugin}` cannot read `{object}`{}: {message}", at_line(*line))]
    Format {
        /// The plugin's name.
        plugin: String,
        /// The object's key.
        object: String,
        /// The 1-based line the plugin found the problem on; 0 where no line applies.
        line: u64,
        /// What the plugin said.
        message: String,
    },
    /// A call ran past the plugin's time limit and was interrupted.
    #[error("plugin `{plugin}` ran past its time limit of {limit:?} on `{object}` and was stopped")]
    Timeout {
        /// The plugin's name.
        plugin: String,
        /// The object's key.
        object: String,
        /// The limit of one call.
        limit: Duration,
    },
    /// The instance tried to grow its memory past the cap.
    #[error("plugin `{plugin}` reached its memory limit of {} MiB on `{object}` and was stopped", limit >> 20)]
    MemoryLimit {
        /// The plugin's name.
        plugin: String,
        /// The object's key.
        object: String,
        /// The cap, in bytes.
        limit: usize,
    },
    /// The plugin trapped (a panic, an out-of-bounds access).
    #[error("plugin `{plugin}` crashed on `{object}`: {message}{}", stderr.as_ref().map(|s| format!("\nplugin stderr:\n{s}")).unwrap_or_default())]
    Trap {
        /// The plugin's name.
        plugin: String,
        /// The object's key.
        object: String,
        /// The trap, as wasmtime tells it.
        message: String,
        /// The last lines the plugin wrote to stderr (its panic message), if any.
        stderr: Option<String>,
    },
    /// A data template cannot work on the object at all (its options are wrong, say).
    #[error("template `{plugin}` failed on `{object}`: {message}")]
    Template {
        /// The template's name.
        plugin: String,
        /// The object's key.
        object: String,
        /// What the template said.
        message: String,
    },
    /// The plugin broke the contract (a malformed batch).
    #[error("plugin `{plugin}` returned a malformed batch for `{object}`: {message}")]
    Contract {
        /// The plugin's name.
        plugin: String,
        /// The object's key.
        object: String,
        /// What was malformed.
        message: String,
    },
}

fn at_line(line: u64) -> String {
    if line == 0 { String::new() } else { format!(" at line {line}") }
}

/// Settings of a [`PluginHost`].
#[derive(Clone, Debug, Default)]
pub struct HostSettings {
    /// Where compiled plugins are cached; `None` compiles at every load.
    pub cache_dir: Option<PathBuf>,
}

/// Loads and runs plugins. Make one per process: it owns the engine and a ticker thread.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<Sandbox>,
    cache: ComponentCache,
    _ticker: EpochTicker,
}

impl PluginHost {
    /// Starts the engine (and its epoch ticker thread) with `settings`.
    pub fn new(settings: HostSettings) -> wasmtime::Result<Self> {
        let engine = engine::new_engine()?;
        let mut linker = Linker::new(&engine);
        // The WASI interfaces are linked so that plugins built with Rust's standard library instantiate;
        // the context behind them (see `Sandbox`) grants nothing.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        // A ranged parser's file (contract 1.2.0). Other plugins do not import it.
        bindings::ranged::sluice::plugin::input::add_to_linker::<_, wasmtime::component::HasSelf<Sandbox>>(
            &mut linker,
            |sandbox| sandbox,
        )?;
        Ok(PluginHost {
            _ticker: EpochTicker::start(&engine),
            engine,
            linker,
            cache: ComponentCache::new(settings.cache_dir),
        })
    }

    /// Loads a format plugin: compiles it (or takes it from the cache), refuses forbidden imports, and
    /// checks that it implements the `format` world, or (since 1.2.0) the `ranged-format` one, or (since
    /// 1.3.0) the `typed-ranged-format` one, or (since 1.4.0) the `typed-format` one.
    pub fn load_format(&self, spec: &PluginSpec) -> Result<FormatPlugin, PluginError> {
        let prepared = self.prepare(spec)?;
        let not_a_format = |e: wasmtime::Error| {
            load_error(
                spec,
                format!(
                    "it is not a Sluice format plugin (it must export `sluice:plugin/parser@{0}.x`, \
                     `sluice:plugin/typed-parser@{0}.x`, `sluice:plugin/ranged-parser@{0}.x`, or \
                     `sluice:plugin/typed-ranged-parser@{0}.x`): {e:#}",
                    CONTRACT_VERSION.major
                ),
            )
        };
        let pre = match prepared.world {
            Some(World::RangedFormat) => format::ParserPre::Ranged(
                bindings::ranged::RangedFormatPre::new(prepared.pre).map_err(not_a_format)?,
            ),
            Some(World::TypedRangedFormat) => format::ParserPre::TypedRanged(
                bindings::typed_ranged::TypedRangedFormatPre::new(prepared.pre).map_err(not_a_format)?,
            ),
            Some(World::TypedFormat) => format::ParserPre::Spans(
                bindings::typed::TypedFormatPre::new(prepared.pre).map_err(not_a_format)?,
            ),
            _ => format::ParserPre::Stream(
                bindings::format::FormatPre::new(prepared.pre).map_err(not_a_format)?,
            ),
        };
        Ok(FormatPlugin {
            name: spec.name.clone(),
            pre,
            digest: prepared.digest,
            limits: spec.limits,
            default_options: prepared.default_options,
            compiled_from: prepared.compiled_from,
            compile_time: prepared.compile_time,
        })
    }

    /// Loads a data template: as [`PluginHost::load_format`], for the `template` world.
    pub fn load_template(&self, spec: &PluginSpec) -> Result<TemplatePlugin, PluginError> {
        let prepared = self.prepare(spec)?;
        let pre = bindings::template::TemplatePre::new(prepared.pre).map_err(|e| {
            load_error(
                spec,
                format!(
                    "it is not a Sluice data template (it must export `sluice:plugin/transform@{}.x`): {e:#}",
                    CONTRACT_VERSION.major
                ),
            )
        })?;
        Ok(TemplatePlugin { name: spec.name.clone(), pre, digest: prepared.digest, limits: spec.limits })
    }

    /// Compiles (or takes from the cache) a plugin's component and links it, refusing forbidden imports and
    /// a contract version this host does not implement.
    fn prepare(&self, spec: &PluginSpec) -> Result<Prepared, PluginError> {
        let (wasm, default_options) = match &spec.source {
            PluginSource::Bundled(bundled) => {
                (std::borrow::Cow::Borrowed(bundled.wasm), bundled.default_options)
            }
            PluginSource::File(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| load_error(spec, format!("cannot read {}: {e}", path.display())))?;
                (std::borrow::Cow::Owned(bytes), &[][..])
            }
        };
        if let Some(reason) = inspect::not_a_component(&wasm) {
            return Err(load_error(spec, reason));
        }
        let started = Instant::now();
        let (component, compiled_from) = self
            .cache
            .load(&self.engine, &wasm)
            .map_err(|e| load_error(spec, format!("not a valid WebAssembly component: {e:#}")))?;
        let compile_time = started.elapsed();
        tracing::debug!(plugin = %spec.name, ?compiled_from, ?compile_time, "plugin loaded");
        self.check_imports(&component).map_err(|reason| load_error(spec, reason))?;
        let exports = component.component_type();
        let exports: Vec<&str> = exports.exports(&self.engine).map(|(name, _)| name).collect();
        if let Some(reason) = contract::version_refusal(exports.iter().copied()) {
            return Err(load_error(spec, reason));
        }
        let world = contract::sluice_export(exports).map(|(world, _)| world);
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| load_error(spec, format!("its imports cannot be satisfied: {e:#}")))?;
        let digest = format!("{:x}", sha2::Sha256::digest(&wasm));
        Ok(Prepared { pre, world, digest, default_options, compiled_from, compile_time })
    }

    fn check_imports(&self, component: &Component) -> Result<(), String> {
        let ty = component.component_type();
        match ty.imports(&self.engine).find_map(|(name, _)| inspect::refused_import(name)) {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }
}

/// Plugins loaded ahead, by their name in `connector.toml`: what a long-lived host (the daemon) runs with,
/// so that a `.wasm` file replaced by something that does not load leaves the plugin loaded before in
/// service (see `sync::Runner::with_plugins`).
#[derive(Clone, Default)]
pub struct PluginSet {
    formats: HashMap<String, FormatPlugin>,
    templates: HashMap<String, TemplatePlugin>,
}

impl PluginSet {
    /// The format plugin loaded as `name`.
    pub fn format(&self, name: &str) -> Option<&FormatPlugin> {
        self.formats.get(name)
    }

    /// The data template loaded as `name`.
    pub fn template(&self, name: &str) -> Option<&TemplatePlugin> {
        self.templates.get(name)
    }

    /// Keeps `plugin` as the format plugin `name`.
    pub fn insert_format(&mut self, name: String, plugin: FormatPlugin) {
        self.formats.insert(name, plugin);
    }

    /// Keeps `plugin` as the data template `name`.
    pub fn insert_template(&mut self, name: String, plugin: TemplatePlugin) {
        self.templates.insert(name, plugin);
    }
}

/// A plugin compiled and linked, not yet checked against a world.
struct Prepared {
    pre: InstancePre<Sandbox>,
    /// The Sluice world its exports name, where they name one.
    world: Option<World>,
    /// The SHA-256 of the component's bytes, in hex: which build of the plugin this is.
    digest: String,
    default_options: &'static [(&'static str, &'static str)],
    compiled_from: CompileSource,
    compile_time: Duration,
}

/// A plugin's name, build and limits in one line.
fn identity(name: &str, digest: &str, limits: Limits) -> String {
    format!(
        "{name} (sha256 {}, {} MiB, {:?} a call)",
        &digest[..digest.len().min(16)],
        limits.memory >> 20,
        limits.call_timeout
    )
}

fn load_error(spec: &PluginSpec, reason: String) -> PluginError {
    PluginError::Load { plugin: spec.name.clone(), reason }
}
