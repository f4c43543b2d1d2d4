//! The one wasmtime [`Engine`] of the process, and the ticker that drives its epoch-based time limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::{Config, Engine, OptLevel, ProfilingStrategy};

/// How often the epoch advances. A call's time limit is counted in these ticks, so it is met to within
/// one tick. 10 ms costs nothing measurable and is far finer than any sensible limit.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Builds the engine every plugin runs on.
///
/// - Epoch interruption, not fuel: an epoch check is a load and a compare at loop heads and calls, where
///   fuel counts every instruction and was measured 2 to 3 times slower on parsing loops.
/// - Cranelift at `Speed`: plugins are compiled once (and cached on disk), then run on every byte.
/// - Instances are allocated on demand: a parser is instantiated once per file, which costs microseconds
///   next to parsing it, so a pooling allocator's reserved address space buys nothing here.
/// - With `SLUICE_PLUGIN_PROFILER=perfmap`, compiled plugin code is listed in `/tmp/perf-PID.map`, so that
///   `perf report` names a plugin's own functions rather than an anonymous address range.
pub(crate) fn new_engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.cranelift_opt_level(OptLevel::Speed);
    match std::env::var(PROFILER_VARIABLE).as_deref() {
        Err(_) => {}
        Ok("perfmap") => _ = config.profiler(ProfilingStrategy::PerfMap),
        Ok(other) => {
            wasmtime::bail!("{PROFILER_VARIABLE} is `{other}`; the one profiler supported is perfmap")
        }
    }
    Engine::new(&config)
}

/// Names the profiler that plugin code is made visible to.
const PROFILER_VARIABLE: &str = "SLUICE_PLUGIN_PROFILER";

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("sluice-epoch".into())
            .spawn({
                let engine = engine.clone();
                let stop = stop.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                }
            })
            .expect("spawning the epoch ticker thread");
        EpochTicker { stop, thread: Some(thread) }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
