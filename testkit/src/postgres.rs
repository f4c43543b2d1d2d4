//! A PostgreSQL database of its own for each test, on the server this machine runs (127.0.0.1:5432 unless
//! `SLUICE_TEST_POSTGRES` names another). Made empty on creation and dropped with the value, so tests run in
//! parallel without seeing each other's dataflows.
//!
//! A test that needs PostgreSQL fails, saying so, when the server is not there: it never passes without it.

use postgres::{Client, NoTls};
use std::sync::atomic::{AtomicU32, Ordering};

/// The server tests use, as an admin URL to its `test` database.
pub fn server_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn admin() -> Client {
    let url = server_url();
    Client::connect(&url, NoTls).unwrap_or_else(|e| {
        panic!(
            "this test needs PostgreSQL, which is not reachable at {url} ({e}); start it (`.ci/run` does) \
             or point SLUICE_TEST_POSTGRES at one"
        )
    })
}

/// A database that lives as long as this value.
pub struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates an empty database with a name no other test of any process uses.
    pub fn create() -> TestDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("sluice_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut admin = admin();
        // Two statements, two calls: a multi-statement string runs as one transaction, which neither allows.
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let server = server_url();
        let base = server.rsplit_once('/').map_or(server.as_str(), |(base, _)| base);
        TestDatabase { url: format!("{base}/{name}"), name }
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A client of its own on the database.
    pub fn client(&self) -> Client {
        Client::connect(&self.url, NoTls).expect("the test database accepts connections")
    }

    /// How many sessions on the database have an `application_name` `LIKE` `pattern`.
    pub fn sessions_named(&self, pattern: &str) -> u64 {
        let row = admin()
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE $2",
                &[&self.name, &pattern],
            )
            .unwrap();
        row.get::<_, i64>(0) as u64
    }

    /// Ends every session Sluice has open on the database, as a server restart or failover would.
    pub fn terminate_sessions(&self) -> u64 {
        self.terminate_sessions_named("sluice%")
    }

    /// Ends the sessions on the database whose `application_name` is `LIKE` `pattern`; returns how many.
    pub fn terminate_sessions_named(&self, pattern: &str) -> u64 {
        let mut admin = admin();
        let ended = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND application_name LIKE $2",
                &[&self.name, &pattern],
            )
            .unwrap();
        ended.len() as u64
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Another test's pool may still hold a connection: FORCE ends it.
        let _ = admin().batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// Makes sure the server takes TLS, switching it on with Debian's snakeoil certificate (what its
/// `postgresql.conf` ships with) where it is off, and returns the path of the server's certificate, which
/// is self-signed: the root certificate a verifying client is given.
pub fn ssl_on() -> std::path::PathBuf {
    let mut session = admin();
    let show = |client: &mut Client, setting: &str| -> String {
        client.query_one(&format!("SHOW {setting}"), &[]).unwrap().get(0)
    };
    if show(&mut session, "ssl") != "on" {
        session
            .batch_execute(
                "ALTER SYSTEM SET ssl_cert_file = '/etc/ssl/certs/ssl-cert-snakeoil.pem';
                 ALTER SYSTEM SET ssl_key_file = '/etc/ssl/private/ssl-cert-snakeoil.key';
                 ALTER SYSTEM SET ssl = on;
                 SELECT pg_reload_conf();",
            )
            .unwrap();
        // The reload is signalled, not waited for: a new session sees it once it is done.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while show(&mut admin(), "ssl") != "on" {
            assert!(std::time::Instant::now() < deadline, "PostgreSQL did not switch ssl on (see its log)");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let certificate = std::path::PathBuf::from(show(&mut session, "ssl_cert_file"));
    assert!(
        std::fs::read(&certificate).is_ok(),
        "the server's certificate {} is not readable by this test",
        certificate.display()
    );
    certificate
}
