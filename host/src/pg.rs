//! PostgreSQL connections, shared by the tables sink and the state store: one pool per URL for the whole
//! process, so a daemon running many dataflows against one server keeps a bounded set of connections.
//!
//! A URL may hold a password; nothing here puts one into an error or a log line ([`redact`]).

use postgres::NoTls;
use r2d2_postgres::PostgresConnectionManager;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// A pool of connections to one server.
pub type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;
/// A connection taken from a [`Pool`]; back to the pool when dropped.
pub type PooledClient = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

/// Connections one process keeps to one server at most.
const POOL_SIZE: u32 = 8;
/// How long taking a connection waits: for the server to answer, or for a pooled connection to come free.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How Sluice's sessions are named in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "sluice";

/// Whether `url` reads as a PostgreSQL connection URL; the message never holds the password.
pub fn check_url(url: &str) -> Result<(), String> {
    url.parse::<postgres::Config>()
        .map(drop)
        .map_err(|e| format!("`{}` is not a PostgreSQL URL: {e}", redact(url)))
}

/// `url` with its password, if any, replaced by `***`, and its options (which may hold `password=`) left
/// out.
pub fn redact(url: &str) -> String {
    let (url, options) = match url.split_once('?') {
        Some((url, _)) => (url, "?…"),
        None => (url, ""),
    };
    let Some((scheme, rest)) = url.split_once("://") else { return format!("{url}{options}") };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{credentials}@{host}"),
        },
        None => authority.to_string(),
    };
    format!("{scheme}://{authority}{path}{options}")
}

fn connection_config(url: &str) -> Result<postgres::Config, String> {
    let mut config: postgres::Config =
        url.parse().map_err(|e| format!("`{}` is not a PostgreSQL URL: {e}", redact(url)))?;
    config.application_name(APPLICATION_NAME);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(config)
}

/// The process's pool for `url`, made on first use. Connections are opened as they are needed.
pub fn pool(url: &str) -> Result<Pool, String> {
    static POOLS: OnceLock<Mutex<HashMap<String, Pool>>> = OnceLock::new();
    let mut pools = POOLS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if let Some(pool) = pools.get(url) {
        return Ok(pool.clone());
    }
    let manager = PostgresConnectionManager::new(connection_config(url)?, NoTls);
    let pool = r2d2::Pool::builder()
        .max_size(POOL_SIZE)
        .min_idle(Some(0))
        .connection_timeout(CONNECT_TIMEOUT)
        // A connection the server dropped (restart, failover, terminated) is found out before it is used.
        .test_on_check_out(true)
        // r2d2 would log each failed attempt itself; the caller reports the failure once.
        .error_handler(Box::new(r2d2::NopErrorHandler))
        .build_unchecked(manager);
    pools.insert(url.to_string(), pool.clone());
    Ok(pool)
}

/// A connection from the pool for `url`.
pub fn connect(url: &str) -> Result<PooledClient, String> {
    pool(url)?.get().map_err(|e| format!("cannot connect to {}: {e}", redact(url)))
}

/// A connection of its own, outside the pool: for a session-scoped hold such as an advisory lock, which
/// must end with the connection rather than outlive it in the pool.
pub fn connect_unpooled(url: &str) -> Result<postgres::Client, String> {
    connection_config(url)?.connect(NoTls).map_err(|e| format!("cannot connect to {}: {e}", redact(url)))
}

/// `name` as a quoted identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The error of a PostgreSQL call, with the server's detail and hint where it gave them.
pub fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = db.message().to_string();
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; {hint}"));
            }
            text
        }
        None if error.is_closed() => "the connection to PostgreSQL was closed".to_string(),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact("postgres://app:s3cret@db:5432/x"), "postgres://app:***@db:5432/x");
        assert_eq!(redact("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact("postgres://db/x?password=s3cret"), "postgres://db/x?…");
        assert_eq!(redact("postgres://a@db/x?password=s3cret"), "postgres://a@db/x?…");
    }
}
