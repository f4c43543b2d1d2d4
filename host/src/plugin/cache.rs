//! Compiled components cached on disk, so that a restart does not compile every plugin again.
//!
//! An entry is keyed by the SHA-256 of the component's bytes together with the engine's compatibility hash
//! (wasmtime version, target and every compilation setting), so a changed plugin or a changed engine can
//! never load a stale entry.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::{Engine, Precompiled};

/// Where compiled plugins are kept, unless the configuration says otherwise: `$SLUICE_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/sluice/plugins`, else `~/.cache/sluice/plugins`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SLUICE_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("sluice").join("plugins"))
}

pub(crate) struct ComponentCache {
    dir: Option<PathBuf>,
}

/// Whether a component came from the cache or was compiled now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompileSource {
    /// It was compiled before and read from the cache.
    Cache,
    /// It was compiled now.
    Compiled,
}

impl ComponentCache {
    /// A cache in `dir`; `None` compiles every time.
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        ComponentCache { dir }
    }

    /// The compiled form of `wasm`, from the cache where it holds it.
    pub(crate) fn load(&self, engine: &Engine, wasm: &[u8]) -> wasmtime::Result<(Component, CompileSource)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, wasm)?, CompileSource::Compiled));
        };
        let path = dir.join(format!("{}.cwasm", cache_key(engine, wasm)));
        if let Some(component) = load_cached(engine, &path) {
            return Ok((component, CompileSource::Cache));
        }
        let compiled = engine.precompile_component(wasm)?;
        if let Err(error) = store(dir, &path, &compiled) {
            tracing::warn!(cache = %dir.display(), %error, "could not write the plugin cache; plugins will be compiled at every start");
        }
        // SAFETY: `compiled` was produced just now by `precompile_component` on this very engine.
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        Ok((component, CompileSource::Compiled))
    }
}

fn load_cached(engine: &Engine, path: &Path) -> Option<Component> {
    // Read into memory rather than mapped (`deserialize_file`): a mapped entry that anything truncates
    // while the process runs would kill it with SIGBUS. Entries are a few hundred KiB.
    let bytes = std::fs::read(path).ok()?;
    if Engine::detect_precompiled(&bytes) != Some(Precompiled::Component) {
        return None;
    }
    // SAFETY: `deserialize` trusts its input to be wasmtime's own output. The entry lies in Sluice's own
    // cache directory, was written there by `store` from `precompile_component`, and its name carries the
    // engine's compatibility hash, so an entry from another engine configuration is never read. A
    // truncated or foreign file still fails wasmtime's header checks, and we compile again.
    match unsafe { Component::deserialize(engine, &bytes) } {
        Ok(component) => Some(component),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "ignoring an unreadable cached plugin");
            None
        }
    }
}

/// Writes the entry under a temporary name and renames it, so a reader never sees half a file.
fn store(dir: &Path, path: &Path, compiled: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temporary, compiled)?;
    std::fs::rename(&temporary, path)
}

fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.update(wasm);
    format!("{:x}", hasher.0.finalize())
}

/// Lets `std::hash::Hash` values (the engine's compatibility hash) feed a SHA-256 digest.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        unreachable!("only the digest is read")
    }
}
