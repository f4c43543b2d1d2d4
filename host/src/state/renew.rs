//! Holds in the state store that a thread of their own renews: a run's lease on its dataflow, a worker's
//! claims on objects. The thread renews every sixth of the hold's time to live on a session of its own
//! (opened again where the server ended it), and lets the hold go when told to stop.

use super::{DatabaseUrl, StateError, StateStore};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A hold a thread renews (see [`keep_renewed`]).
pub(super) trait Renewed {
    /// The name of the hold's session in `pg_stat_activity`.
    fn session(&self) -> String;
    /// What the hold is, for the log: `the run's lease on dataflow Orders`.
    fn what(&self) -> String;
    /// Renews the hold on `store`: false where it was lost (another took it over), which ends the renewing.
    fn renew(&self, store: &mut StateStore) -> Result<bool, StateError>;
    /// The store has not answered for `since`, so that the hold may have expired (`error` the last
    /// failure); whether to stop renewing.
    fn unreachable(&self, error: &StateError, since: Duration) -> bool;
    /// Lets the hold go, on `store` where it is still open.
    fn release(&self, url: &DatabaseUrl, store: Option<StateStore>);
}

/// Renews `hold`, which lasts `ttl` unrenewed, every sixth of that until told to stop (then lets it go),
/// or until it is lost.
pub(super) fn keep_renewed(
    url: DatabaseUrl,
    store: StateStore,
    hold: &impl Renewed,
    ttl: Duration,
    stop: Receiver<()>,
) {
    let every = ttl / 6;
    let mut store = Some(store);
    let mut renewed = Instant::now();
    loop {
        match stop.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return hold.release(&url, store),
        }
        // A connection that broke (the server restarted, the session was ended) is opened again.
        let renewal = match store.take() {
            Some(open) => Ok(open),
            None => StateStore::open_as(&url, Some(&hold.session())),
        }
        .and_then(|mut open| {
            let renewal = hold.renew(&mut open);
            store = Some(open);
            renewal
        });
        match renewal {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => return,
            Err(error) => {
                store = None;
                if renewed.elapsed() + every < ttl {
                    tracing::warn!("renewing {} failed, trying again: {error}", hold.what());
                } else if hold.unreachable(&error, renewed.elapsed()) {
                    return;
                }
            }
        }
    }
}
