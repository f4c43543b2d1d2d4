//! What a `.wasm` file is, as `sluice plugin inspect` shows it: a component or not, the world and contract
//! version it exports, what it says of itself, what it imports (and which of those the sandbox refuses),
//! its size and what it costs to compile.

use super::contract::{self, CONTRACT_PACKAGE, ContractVersion, World};
use super::sandbox::{deadline_ticks, new_store};
use super::{CompileSource, FORBIDDEN_IMPORTS, Limits, PluginHost};
use std::time::{Duration, Instant};
use wasmtime::component::Component;

/// The host side of the `described` world (contract 1.1.0): a plugin's `about`, where it exports one.
mod about_bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "described",
    });
}

/// One import of a component, with why the sandbox refuses it where it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import {
    /// The imported interface (`wasi:io/streams@0.2.6`).
    pub name: String,
    /// Why Sluice refuses it, where it does.
    pub refused: Option<String>,
}

/// What a plugin says of itself (the contract's `about`, since 1.1.0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct About {
    /// The plugin's own name.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// One line on what it does; empty where its author gave none.
    pub summary: String,
}

/// What a component is.
#[derive(Clone, Debug)]
pub struct Inspection {
    /// Bytes of the `.wasm` file.
    pub size: usize,
    /// The Sluice world it implements; none for a component that exports no Sluice interface.
    pub world: Option<World>,
    /// The contract version its Sluice export names (`1.1.0`), where it names one Sluice can read.
    pub contract_version: Option<ContractVersion>,
    /// What it says of itself: `None` where it exports no `about` (a plugin built against 1.0.0) or would
    /// be refused (nothing of it is run then), an error where asking it failed.
    pub about: Option<Result<About, String>>,
    /// The names of everything it exports.
    pub exports: Vec<String>,
    /// Everything it imports.
    pub imports: Vec<Import>,
    /// What loading it took: compiling it, or reading it from the cache of compiled plugins.
    pub compile_time: Duration,
    /// Whether it was compiled now or read from the cache.
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
                "it exports no Sluice interface (a format plugin exports `{CONTRACT_PACKAGE}parser` or `{CONTRACT_PACKAGE}ranged-parser`, a template `{CONTRACT_PACKAGE}transform`): it is not a Sluice plugin"
            )),
            Some(_) => contract::version_refusal(self.exports.iter().map(String::as_str)),
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
        // By name: the order a component lists them in follows how its toolchain linked it, which a plugin's
        // author does not choose and which changes between builds of the same source.
        let mut exports: Vec<String> = ty.exports(&self.engine).map(|(name, _)| name.to_string()).collect();
        exports.sort();
        let imports: Vec<Import> = ty
            .imports(&self.engine)
            .map(|(name, _)| Import { name: name.to_string(), refused: refused_import(name) })
            .collect();
        let sluice_export = contract::sluice_export(exports.iter().map(String::as_str));
        let mut inspection = Inspection {
            size: wasm.len(),
            world: sluice_export.as_ref().map(|(world, _)| *world),
            contract_version: sluice_export.and_then(|(_, version)| version.ok()),
            about: None,
            exports,
            imports,
            compile_time,
            compiled_from,
        };
        // Nothing of a plugin that would be refused is run, not even its `about`.
        if inspection.refusal().is_none() {
            inspection.about = self.describe(&component);
        }
        Ok(inspection)
    }

    /// Asks a plugin what it is, in a sandbox of its own under the default limits; `None` where it
    /// exports no `about`.
    fn describe(&self, component: &Component) -> Option<Result<About, String>> {
        let pre = self.linker.instantiate_pre(component).ok()?;
        let pre = about_bindings::DescribedPre::new(pre).ok()?;
        let limits = Limits::default();
        let mut store = new_store(&self.engine, limits);
        store.set_epoch_deadline(deadline_ticks(limits));
        let answer = pre
            .instantiate(&mut store)
            .and_then(|described| described.sluice_plugin_about().call_describe(&mut store))
            .map(|d| About { name: d.name, version: d.version, summary: d.summary })
            .map_err(|e| format!("its `about` failed: {e:#}"));
        Some(answer)
    }
}
