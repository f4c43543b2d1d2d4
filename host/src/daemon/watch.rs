//! What makes the daemon reload or stop: SIGHUP, a change of `connector.toml` or of a plugin's `.wasm`
//! file (watched through inotify on their folders, since editors and deploy tools replace a file by
//! renaming a new one over it), and SIGTERM or SIGINT.

use super::Daemon;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

/// How long the watcher waits after a change for more before it reloads: one save often writes a file
/// in several steps.
const SETTLE: Duration = Duration::from_millis(300);

/// Keeps the watching going while it lives.
pub(super) struct Watching {
    _task: tokio::task::JoinHandle<()>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self._task.abort();
    }
}

/// Starts reloading on SIGHUP and, where `[daemon] watch` is on, on file changes. The signal handler
/// and the file watches are in place when this returns, so that a change made as soon as the API
/// answers is not missed.
pub(super) fn start(daemon: Arc<Daemon>) -> std::io::Result<Watching> {
    let mut hangup = signal(SignalKind::hangup())?;
    let (changes, mut changed) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = FileWatcher::new(changes);
    watcher.follow(&daemon);
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hangup.recv() => tracing::info!("SIGHUP: reloading"),
                Some(()) = changed.recv() => {
                    // Let the writes of one save settle, and take them as one change.
                    tokio::time::sleep(SETTLE).await;
                    while changed.try_recv().is_ok() {}
                    tracing::info!("a watched file changed: reloading");
                }
            }
            let reloading = daemon.clone();
            if tokio::task::spawn_blocking(move || reloading.reload()).await.is_err() {
                tracing::error!("the reload panicked; the configuration in force is kept");
            }
            watcher.follow(&daemon);
        }
    });
    Ok(Watching { _task: task })
}

/// SIGTERM and SIGINT, caught from the moment this is made (before the API answers, so that a stop
/// sent as soon as it does is not taken by the default handler, which would end the process at once).
pub(super) struct StopSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub(super) fn catch() -> std::io::Result<StopSignals> {
        Ok(StopSignals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves at SIGTERM or SIGINT.
    pub(super) async fn wait(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => tracing::info!("SIGTERM received"),
            _ = self.interrupt.recv() => tracing::info!("SIGINT received"),
        }
    }
}

/// Watches the folders of the files a reload depends on, and says when one of those files changes.
struct FileWatcher {
    sender: tokio::sync::mpsc::UnboundedSender<()>,
    watcher: Option<RecommendedWatcher>,
    files: BTreeSet<PathBuf>,
}

impl FileWatcher {
    fn new(sender: tokio::sync::mpsc::UnboundedSender<()>) -> FileWatcher {
        FileWatcher { sender, watcher: None, files: BTreeSet::new() }
    }

    /// Watches what the generation in force depends on (nothing where `[daemon] watch = false`).
    fn follow(&mut self, daemon: &Daemon) {
        let generation = daemon.generation();
        if !generation.config.daemon.watch() {
            self.watcher = None;
            self.files.clear();
            return;
        }
        let files: BTreeSet<PathBuf> = generation.watched_files().iter().map(|file| absolute(file)).collect();
        let folders: BTreeSet<PathBuf> =
            files.iter().filter_map(|f| f.parent().map(Path::to_path_buf)).collect();
        if self.watcher.is_some() && files == self.files {
            return;
        }
        let sender = self.sender.clone();
        let watched = files.clone();
        let made = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if event.kind.is_access() {
                return;
            }
            if event.paths.iter().any(|path| watched.contains(&absolute(path))) {
                let _ = sender.send(());
            }
        });
        let mut watcher = match made {
            Ok(watcher) => watcher,
            Err(error) => {
                tracing::warn!("cannot watch files for changes (SIGHUP still reloads): {error}");
                return;
            }
        };
        for folder in &folders {
            if let Err(error) = watcher.watch(folder, RecursiveMode::NonRecursive) {
                tracing::warn!(folder = %folder.display(), "cannot watch for changes (SIGHUP still reloads): {error}");
            }
        }
        self.watcher = Some(watcher);
        self.files = files;
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
