//! What a plugin instance may touch: nothing of the host, and a capped amount of memory.

use super::bindings::ranged::sluice::plugin::input;
use super::engine::EPOCH_TICK;
use super::ranged::Served;
use super::{Limits, PluginError};
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// How much of a plugin's stderr (its panic message, say) is kept to explain a failure.
const STDERR_CAPACITY: usize = 16 * 1024;

/// The state of one plugin store: an empty WASI context, the memory limiter, and the one file a ranged
/// parser may read.
pub(crate) struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    stderr: MemoryOutputPipe,
    /// The file a ranged parser reads (contract 1.2.0's `input`); none for any other plugin.
    pub(crate) input: Option<Served>,
}

impl Sandbox {
    /// `WasiCtxBuilder::new()` grants nothing: no preopened directories, no environment or arguments, no
    /// sockets, stdin empty and stdout discarded. Only stderr goes to a small in-memory buffer, read when a
    /// plugin fails.
    pub(crate) fn new(memory_limit: usize) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtxBuilder::new().stderr(stderr.clone()).build();
        Sandbox {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter { limit: memory_limit, exceeded: false },
            stderr,
            input: None,
        }
    }

    /// The last lines the plugin wrote to stderr (a panic message, say), if any.
    pub(crate) fn stderr_tail(&self) -> Option<String> {
        const LINES: usize = 5;
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.trim().lines().collect();
        let tail = lines[lines.len().saturating_sub(LINES)..].join("\n");
        (!tail.is_empty()).then_some(tail)
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Contract 1.2.0's `input`, the one thing of the host a plugin may reach: the file a ranged parser reads,
/// each range checked by [`Served`].
impl input::Host for Sandbox {
    fn size(&mut self) -> u64 {
        self.input.as_ref().map_or(0, Served::size)
    }

    fn read(&mut self, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        match self.input.as_mut() {
            Some(served) => served.read(offset, len),
            None => Err("this parse has no file to read by ranges".into()),
        }
    }
}

/// Caps a plugin's linear memory. Growing past the cap traps at once (rather than handing the guest a
/// failed `memory.grow` it may not check), and the limiter remembers why, so the error can say so.
pub(crate) struct MemoryLimiter {
    limit: usize,
    pub(crate) exceeded: bool,
}

/// Tables hold function references; no parser needs more entries than this.
const TABLE_ELEMENTS_LIMIT: usize = 100_000;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            wasmtime::bail!("memory limit of {} MiB reached", self.limit >> 20);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= TABLE_ELEMENTS_LIMIT)
    }
}

/// A fresh store for one object's instance, under `limits`.
pub(crate) fn new_store(engine: &Engine, limits: Limits) -> Store<Sandbox> {
    let mut store = Store::new(engine, Sandbox::new(limits.memory));
    store.limiter(|sandbox| &mut sandbox.limiter);
    store.epoch_deadline_trap();
    store
}

/// The epoch ticks one call may run. The first tick may come at once after the deadline is set, so one
/// more tick makes the limit a floor: a call is stopped between `call_timeout` and one tick later.
pub(crate) fn deadline_ticks(limits: Limits) -> u64 {
    limits.call_timeout.div_duration_f64(EPOCH_TICK).ceil() as u64 + 1
}

/// Turns a failed call into an error that says which limit was hit, or what the plugin printed.
pub(crate) fn call_failure(
    store: &Store<Sandbox>,
    limits: Limits,
    plugin: &str,
    object: &str,
    error: wasmtime::Error,
) -> PluginError {
    let (plugin, object) = (plugin.to_string(), object.to_string());
    if store.data().limiter.exceeded {
        return PluginError::MemoryLimit { plugin, object, limit: limits.memory };
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return PluginError::Timeout { plugin, object, limit: limits.call_timeout };
    }
    let message = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    };
    PluginError::Trap { plugin, object, message, stderr: store.data().stderr_tail() }
}
