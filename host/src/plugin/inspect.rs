//! What a `.wasm` file is, as `sluice plugin inspect` shows it: a component or not, the world and contract
//! version it exports, what it imports (and which of those the sandbox refuses), its size and what it costs
//! to compile.

use super::{CompileSource, FORBIDDEN_IMPORTS, PluginHost};
use std::time::{Duration, Instant};

/// The package every Sluice plugin's exports belong to.
const CONTRACT_PACKAGE: &str = "sluice:plugin/";

/// Which world a component implements, by the interface it exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum World {
    /// Exports `sluice:plugin/parser`: a format plugin.
    Format,
    /// Exports `sluice:plugin/transform`: a data template.
    Template,
}

impl World {
    pub fn as_str(self) -> &'static str {
        match self {
            World::Format => "format",
            World::Template => "template",
        }
    }
}

/// One import of a component, with why the sandbox refuses it where it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import {
    pub name: String,
    pub refused: Option<String>,
}

/// What a component is.
#[derive(Clone, Debug)]
pub struct Inspection {
    /// Bytes of the `.wasm` file.
    pub size: usize,
    /// The Sluice world it implements; none for a component that exports no Sluice interface.
    pub world: Option<World>,
    /// The contract version its Sluice export names (`0.1.0`).
    pub contract_version: Option<String>,
    pub exports: Vec<String>,
    pub imports: Vec<Import>,
    /// What loading it took: compiling it, or reading it from the cache of compiled plugins.
    pub compile_time: Duration,
    pub compiled_from: CompileSource,
}

impl Inspection {
    /// Why Sluice would not load it, where it would not.
    pub fn refusal(&self) -> Option<String> {
        if let Some(import) = self.imports.iter().find(|i| i.refused.is_some()) {
            return import.refused.clone();
        }
        match self.world {
            None => Some(format!(
                "it exports no Sluice interface (a format plugin exports `{CONTRACT_PACKAGE}parser`, a template `{CONTRACT_PACKAGE}transform`): it is not a Sluice plugin"
            )),
            Some(_) => None,
        }
    }
}

/// Why bytes that are not a component cannot be one, in words a plugin author can act on.
pub(super) fn not_a_component(wasm: &[u8]) -> Option<String> {
    match wasm.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Some(
            "it is a core WebAssembly module, not a component: build it with `cargo build --target wasm32-wasip2` \
             (which makes a component), or wrap a module with `wasm-tools component new`"
                .to_string(),
        ),
        Some([0, b'a', b's', b'm', ..]) => None,
        _ => Some("it is not WebAssembly at all (no `\\0asm` header)".to_string()),
    }
}

/// A forbidden import's reason, where `name` is one.
pub(super) fn refused_import(name: &str) -> Option<String> {
    FORBIDDEN_IMPORTS
        .iter()
        .any(|forbidden| name.starts_with(forbidden))
        .then(|| format!("it imports `{name}`, and plugins get no file or network access"))
}

impl PluginHost {
    /// Compiles `wasm` (or takes it from the cache, as a run would) and reads what it exports and imports.
    pub fn inspect(&self, wasm: &[u8]) -> Result<Inspection, String> {
        if let Some(reason) = not_a_component(wasm) {
            return Err(reason);
        }
        let started = Instant::now();
        let (component, compiled_from) = self
            .cache
            .load(&self.engine, wasm)
            .map_err(|e| format!("not a valid WebAssembly component: {e:#}"))?;
        let compile_time = started.elapsed();
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(&self.engine).map(|(name, _)| name.to_string()).collect();
        let imports = ty
            .imports(&self.engine)
            .map(|(name, _)| Import { name: name.to_string(), refused: refused_import(name) })
            .collect();
        let sluice_export = exports.iter().find_map(|name| {
            let interface = name.strip_prefix(CONTRACT_PACKAGE)?;
            let (interface, version) = interface.split_once('@').unwrap_or((interface, ""));
            let world = match interface {
                "parser" => World::Format,
                "transform" => World::Template,
                _ => return None,
            };
            Some((world, (!version.is_empty()).then(|| version.to_string())))
        });
        Ok(Inspection {
            size: wasm.len(),
            world: sluice_export.as_ref().map(|(world, _)| *world),
            contract_version: sluice_export.and_then(|(_, version)| version),
            exports,
            imports,
            compile_time,
            compiled_from,
        })
    }
}
