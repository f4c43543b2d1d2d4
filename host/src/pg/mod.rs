//! PostgreSQL connections, shared by the tables sink and the state store: one pool per URL for the whole
//! process, so a daemon running many dataflows against one server keeps a bounded set of connections.
//!
//! A URL may hold a password; nothing here puts one into an error or a log line ([`redact`]). Its
//! `sslmode` and `sslrootcert` choose TLS ([`tls`]).

mod tls;

use r2d2_postgres::PostgresConnectionManager;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio_postgres_rustls::MakeRustlsConnect;

/// A pool of connections to one server.
pub type Pool = r2d2::Pool<Manager>;
/// A connection taken from a [`Pool`]; back to the pool when dropped.
pub type PooledClient = r2d2::PooledConnection<Manager>;

/// Makes a pool's connections as r2d2_postgres does, with errors that keep their causes (why a TLS
/// handshake failed, say): r2d2 keeps only the message of a connection's error, not its sources.
pub struct Manager(PostgresConnectionManager<MakeRustlsConnect>);

/// Why a pooled connection could not be made, with its causes.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

impl r2d2::ManageConnection for Manager {
    type Connection = postgres::Client;
    type Error = ConnectError;

    fn connect(&self) -> Result<postgres::Client, ConnectError> {
        self.0.connect().map_err(|e| ConnectError(with_causes(&e)))
    }

    fn is_valid(&self, client: &mut postgres::Client) -> Result<(), ConnectError> {
        self.0.is_valid(client).map_err(|e| ConnectError(with_causes(&e)))
    }

    fn has_broken(&self, client: &mut postgres::Client) -> bool {
        self.0.has_broken(client)
    }
}

/// An error's message followed by those of its causes.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(source) = cause {
        text.push_str(&format!(": {source}"));
        cause = source.source();
    }
    text
}

/// Connections one process keeps to one server at most.
const POOL_SIZE: u32 = 8;
/// How long taking a connection waits: for the server to answer, or for a pooled connection to come free.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How Sluice's sessions are named in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "sluice";

/// Whether `url` reads as a PostgreSQL connection URL, its TLS settings included; the message never holds
/// the password.
pub fn check_url(url: &str) -> Result<(), String> {
    connection_config(url).map(drop)
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

/// How to connect to `url`: the client's settings, and the TLS connector its `sslmode` asks for.
fn connection_config(url: &str) -> Result<(postgres::Config, MakeRustlsConnect), String> {
    let not_a_url = |e: &dyn std::fmt::Display| format!("`{}` is not a PostgreSQL URL: {e}", redact(url));
    let (rest, tls) = tls::split_url(url).map_err(|e| not_a_url(&e))?;
    let mut config: postgres::Config = rest.parse().map_err(|e| not_a_url(&e))?;
    config.application_name(APPLICATION_NAME);
    config.ssl_mode(tls.mode.negotiated());
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let connector = tls::connector(&tls).map_err(|e| format!("{}: {e}", redact(url)))?;
    Ok((config, connector))
}

/// The process's pool for `url`, made on first use. Connections are opened as they are needed.
pub fn pool(url: &str) -> Result<Pool, String> {
    static POOLS: OnceLock<Mutex<HashMap<String, Pool>>> = OnceLock::new();
    let mut pools = POOLS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if let Some(pool) = pools.get(url) {
        return Ok(pool.clone());
    }
    let (config, connector) = connection_config(url)?;
    let manager = Manager(PostgresConnectionManager::new(config, connector));
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

/// A connection of its own, outside the pool: for a session of its own such as a lease's, which
/// must end with the connection rather than outlive it in the pool.
pub fn connect_unpooled(url: &str) -> Result<postgres::Client, String> {
    let (config, connector) = connection_config(url)?;
    config.connect(connector).map_err(|e| format!("cannot connect to {}: {}", redact(url), with_causes(&e)))
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
        None => with_causes(error),
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

/// Against the machine's PostgreSQL, with TLS switched on by the test (Debian's snakeoil certificate, which
/// is self-signed and issued for `localhost`).
#[cfg(test)]
mod tls_tests {
    use super::connect_unpooled;
    use sluice_testkit::TestDatabase;
    use sluice_testkit::postgres::ssl_on;

    /// Whether a session on `url` is encrypted; or why it could not be made.
    fn encrypted(url: &str) -> Result<bool, String> {
        let mut client = connect_unpooled(url)?;
        let row = client
            .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
            .map_err(|e| e.to_string())?;
        Ok(row.get(0))
    }

    #[test]
    fn each_sslmode_connects_as_libpq_would_and_verify_full_refuses_a_host_the_certificate_does_not_name() {
        let certificate = ssl_on();
        let root = certificate.display();
        let database = TestDatabase::create();
        let url = database.url();
        assert!(url.contains("@127.0.0.1:"), "the test database is reached by address: {url}");
        let by_name = url.replace("@127.0.0.1:", "@localhost:");
        let with = |url: &str, query: &str| encrypted(&format!("{url}?{query}"));

        assert_eq!(with(url, "sslmode=disable"), Ok(false));
        assert_eq!(encrypted(url), Ok(true), "prefer, the default, takes TLS where the server has it");
        assert_eq!(with(url, "sslmode=require"), Ok(true));
        assert_eq!(with(url, &format!("sslmode=verify-ca&sslrootcert={root}")), Ok(true));
        assert_eq!(with(&by_name, &format!("sslmode=verify-full&sslrootcert={root}")), Ok(true));

        // 127.0.0.1 is not a name the certificate was issued for.
        let wrong_host = with(url, &format!("sslmode=verify-full&sslrootcert={root}")).unwrap_err();
        assert!(wrong_host.contains("not valid for name"), "{wrong_host}");
        assert!(wrong_host.contains("127.0.0.1"), "{wrong_host}");
        // `require` with a root certificate checks the chain, as libpq's does.
        let other_root = std::fs::read_dir("/etc/ssl/certs")
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|e| e == "pem") && *path != certificate)
            .expect("the platform's CA certificates, as PEM files");
        let wrong_root =
            with(url, &format!("sslmode=require&sslrootcert={}", other_root.display())).unwrap_err();
        assert!(wrong_root.contains("UnknownIssuer"), "{wrong_root}");
    }
}
