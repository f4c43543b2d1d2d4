//! The daemon as a worker: with PostgreSQL state it claims the shared objects of runs planned anywhere
//! (see `sync::worker`), up to `[daemon] max_concurrent_objects` at once. With SQLite state, which one
//! machine's one process uses, it holds a lock beside the database that refuses a second daemon.

use super::{Daemon, DaemonError};
use crate::config::{Config, DatabaseUrl};
use crate::state::{WORK_CHANNEL, lock_file};
use crate::sync::runner::reading_of;
use crate::sync::{Runner, SharedObjects, Worker, WorkerPool};
use postgres::fallible_iterator::FallibleIterator;
use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How long the worker waits for a run to ring before it looks for work again.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// How long a daemon that could not join the workers (PostgreSQL was down) waits before it tries again.
const JOIN_AGAIN: Duration = Duration::from_secs(5);

/// What this daemon is as a worker.
pub(super) enum Role {
    /// One of any number, sharing runs through PostgreSQL; the pool once it has joined them.
    Shared(OnceLock<Arc<WorkerPool>>),
    /// The only one of its SQLite state store, holding the lock that says so.
    Alone { _lock: File },
}

impl Role {
    /// The worker pool, once the daemon has joined the workers.
    pub fn pool(&self) -> Option<&Arc<WorkerPool>> {
        match self {
            Role::Shared(pool) => pool.get(),
            Role::Alone { .. } => None,
        }
    }
}

/// The daemon's role among the workers of `config`'s state store: one of many with PostgreSQL (joined by
/// [`serve`]), or alone with SQLite (refused, naming the holder, where another daemon uses that state
/// store already).
pub(super) fn join(config: &Config) -> Result<Role, DaemonError> {
    match config.state_database() {
        DatabaseUrl::Postgres(_) => Ok(Role::Shared(OnceLock::new())),
        DatabaseUrl::Sqlite(path) => {
            let mut lock = path.as_os_str().to_owned();
            lock.push(".daemon.lock");
            let lock = std::path::PathBuf::from(lock);
            match lock_file(&lock) {
                Ok(Ok(file)) => Ok(Role::Alone { _lock: file }),
                Ok(Err(holder)) => Err(DaemonError::Workers(format!(
                    "another sluice daemon ({holder}) uses the SQLite state store `{}`, which serves one worker; to run several daemons, point [state] url at a PostgreSQL database they all reach",
                    path.display()
                ))),
                Err(error) => Err(DaemonError::Workers(format!("{}: {error}", lock.display()))),
            }
        }
    }
}

/// Rings `pool` whenever a run anywhere queues work: `LISTEN` on the state store's [`WORK_CHANNEL`], on a
/// session of its own, opened again when it breaks, until the daemon stops. Between notifications the pool
/// still looks every [`LOOK_EVERY`], so a notification lost with a connection costs that much at most.
fn listen(daemon: &Daemon, pool: &WorkerPool, url: &str) {
    while !daemon.stopping() {
        let session = crate::pg::connect_unpooled(url).and_then(|mut client| {
            client.batch_execute(&format!("LISTEN {WORK_CHANNEL}")).map_err(|e| crate::pg::describe(&e))?;
            Ok(client)
        });
        let mut client = match session {
            Ok(client) => client,
            Err(error) => {
                tracing::debug!("cannot listen for queued work, trying again: {error}");
                std::thread::sleep(JOIN_AGAIN);
                continue;
            }
        };
        while !daemon.stopping() {
            let mut notifications = client.notifications();
            match notifications.timeout_iter(LOOK_EVERY).next() {
                Ok(Some(_)) => pool.ring(),
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(
                        "listening for queued work broke, listening again: {}",
                        crate::pg::describe(&error)
                    );
                    break;
                }
            }
        }
    }
}

/// Joins the workers (trying again while the state store is out of reach; runs here meanwhile load their
/// objects on threads of their own), then claims and loads shared objects until the daemon stops: whenever
/// a run rings, and every [`LOOK_EVERY`], it starts a thread for each object that waits, up to the pool's
/// limit; each thread goes on claiming objects of its dataflow until none is left.
pub(super) fn serve(daemon: Arc<Daemon>) {
    let (Role::Shared(joined), DatabaseUrl::Postgres(url)) =
        (&daemon.role, daemon.generation().config.state_database())
    else {
        return;
    };
    let pool = loop {
        if daemon.stopping() {
            return;
        }
        let config = &daemon.generation().config;
        match Worker::start(&config.state_database(), config.lease_timeout()) {
            Ok(worker) => {
                tracing::info!(worker = worker.id(), "joined the workers of the PostgreSQL state store");
                let pool = Arc::new(WorkerPool::new(worker, config.daemon.max_concurrent_objects()));
                break joined.get_or_init(|| pool).clone();
            }
            Err(error) => {
                tracing::error!("cannot join the workers, trying again in {JOIN_AGAIN:?}: {error}");
                std::thread::sleep(JOIN_AGAIN);
            }
        }
    };
    let (listener, listening) = (pool.clone(), daemon.clone());
    if let Err(error) = std::thread::Builder::new()
        .name("work listener".into())
        .spawn(move || listen(&listening, &listener, &url))
    {
        tracing::warn!("cannot listen for queued work, looking every {LOOK_EVERY:?} instead: {error}");
    }
    // How each dataflow reads its objects, by configuration generation.
    let mut readings: HashMap<(u64, String), String> = HashMap::new();
    while !daemon.stopping() {
        let generation = daemon.generation();
        let config = &generation.config;
        let free = pool.max_objects().saturating_sub(pool.loading());
        let mut state = None;
        for (name, dataflow) in &config.dataflows {
            if free == 0 || !config.shares_work(dataflow) {
                continue;
            }
            let key = (generation.number, name.clone());
            if !readings.contains_key(&key) {
                let runner = Runner::new(config, &daemon.host, daemon.runtime.clone())
                    .with_plugins(&generation.plugins);
                match reading_of(&runner, name) {
                    Ok(reading) => readings.insert(key.clone(), reading),
                    Err(error) => {
                        tracing::debug!(dataflow = name, "this worker cannot load the dataflow: {error}");
                        continue;
                    }
                };
            }
            if state.is_none() {
                state = crate::state::StateStore::open(&config.state_database()).ok();
            }
            let Some(store) = state.as_mut() else { break };
            let waiting = match store.claimable_work(name, &readings[&key]) {
                Ok(waiting) => waiting as usize,
                Err(error) => {
                    tracing::warn!(dataflow = name, "looking for work failed: {error}");
                    continue;
                }
            };
            let start = waiting.min(pool.max_objects().saturating_sub(pool.loading()));
            for _ in 0..start {
                pool.began();
                let (daemon, loader, generation, dataflow) =
                    (daemon.clone(), pool.clone(), generation.clone(), name.clone());
                let spawned = std::thread::Builder::new().name(format!("worker {name}")).spawn(move || {
                    let runner = Runner::new(&generation.config, &daemon.host, daemon.runtime.clone())
                        .with_plugins(&generation.plugins)
                        .with_stop(&daemon.stop);
                    let progress = super::LogProgress { dataflow: &dataflow };
                    let worked = SharedObjects::new(&runner, &dataflow)
                        .map_err(|e| e.to_string())
                        .and_then(|shared| shared.work(loader.worker(), None, &progress));
                    if let Err(error) = worked {
                        tracing::error!(dataflow, worker = loader.worker().id(), "{error}");
                    }
                    loader.ended();
                });
                if let Err(error) = spawned {
                    pool.ended();
                    tracing::error!(dataflow = name, "cannot start a worker thread: {error}");
                }
            }
        }
        readings.retain(|(number, _), _| *number == generation.number);
        pool.wait(LOOK_EVERY);
    }
}
