//! The two databases Sluice keeps tables and state in, for tests that run the same steps on each.
//!
//! A test's `connector.toml` takes its databases from `SLUICE_STATE_URL` and `SLUICE_SINK_URL` (with SQLite
//! files as the defaults, as in the repository's example); [`Backend::command`] sets them for PostgreSQL.
//! Queries run with the dataflow's tables first on the search path, so the same SQL reads both: `orders`
//! is the file's table on SQLite and the schema `orders`'s table on PostgreSQL.

use rusqlite::Connection;
use sluice_testkit::TestDatabase;
use sluice_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The bucket and prefix of [`Backend::DeltaS3`]'s tables.
const LAKE_BUCKET: &str = "lake";
const LAKE_PREFIX: &str = "tables";

/// The `[state]` and `[sink]` sections of a test's own configuration.
pub const DATABASES: &str = "[state]\nurl = \"${SLUICE_STATE_URL:-sqlite://sluice-state.db}\"\n\n[sink]\nurl = \"${SLUICE_SINK_URL:-sqlite://sluice.db}\"\n\n";

/// Each named test function (taking `&Backend`) as two tests, `sqlite::NAME` and `postgres::NAME`; the
/// calling file has `Backend` in scope.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $test() { super::$test(&super::Backend::sqlite()) })*
        }
        mod postgres {
            $(#[test] fn $test() { super::$test(&super::Backend::postgres()) })*
        }
    };
}

/// Each test function of `everywhere` as a test on every backend: the two databases', and Delta tables in a
/// folder and on S3 (`delta::NAME`, `delta_s3::NAME`); each of `databases` on the databases only.
#[macro_export]
macro_rules! on_every_backend {
    (everywhere: [$($test:ident),* $(,)?], databases: [$($only:ident),* $(,)?] $(,)?) => {
        $crate::on_both_backends!($($test,)* $($only,)*);
        mod delta {
            $(#[test] fn $test() { super::$test(&super::Backend::delta()) })*
        }
        mod delta_s3 {
            $(#[test] fn $test() { super::$test(&super::Backend::delta_s3()) })*
        }
    };
}

pub enum Backend {
    /// `sluice.db` and `sluice-state.db` in the test's folder.
    Sqlite,
    /// Delta tables in the test's `lake/` folder (`delta+file://lake`), the state in `sluice-state.db`;
    /// read back by the independent reader (`delta_reader.py`).
    Delta,
    /// Delta tables on an S3 server of the test's own (`delta+s3://lake/tables`), reached through the
    /// SDK's environment settings (`AWS_ENDPOINT_URL` and keys); the state in `sluice-state.db`.
    DeltaS3(S3Server),
    /// A database of the test's own on the machine's PostgreSQL.
    Postgres(TestDatabase),
}

impl Backend {
    pub fn sqlite() -> Backend {
        Backend::Sqlite
    }

    pub fn postgres() -> Backend {
        Backend::Postgres(TestDatabase::create())
    }

    pub fn delta() -> Backend {
        Backend::Delta
    }

    pub fn delta_s3() -> Backend {
        let s3 = S3Server::start();
        s3.create_bucket(LAKE_BUCKET);
        Backend::DeltaS3(s3)
    }

    /// The sink's kind, as `dataflows` shows it.
    pub fn sink_kind(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
            Backend::Delta | Backend::DeltaS3(_) => "delta",
        }
    }

    /// A dataflow's `sink` table that makes every object's rows visible soon after it loads: on Delta,
    /// where objects are committed in groups (of 1000 by default), groups of 5.
    pub fn prompt_commits(&self) -> &'static str {
        match self {
            Backend::Delta | Backend::DeltaS3(_) => "sink = { commit_objects = 5 }\n",
            Backend::Sqlite | Backend::Postgres(_) => "",
        }
    }

    /// How many objects the ledger may have recorded loaded beyond those the sink committed: on Delta,
    /// those of a group of [`Backend::prompt_commits`] not committed yet; none where each object commits
    /// before the ledger records it.
    pub fn recorded_ahead_of_commits(&self) -> i64 {
        match self {
            Backend::Delta | Backend::DeltaS3(_) => 4,
            Backend::Sqlite | Backend::Postgres(_) => 0,
        }
    }

    /// Waits until the database has ended every session of a `sluice` that was killed: a commit the process
    /// sent just before it died still completes on the server, until its session sees the process gone.
    pub fn await_killed_sessions(&self) {
        if let Backend::Postgres(db) = self {
            let deadline = Instant::now() + Duration::from_secs(10);
            while db.sessions_named("sluice%") > 0 {
                assert!(Instant::now() < deadline, "the killed process's sessions are still open");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Backend::Postgres(_))
    }

    /// `sluice`, run in `dir`, on this backend.
    pub fn command(&self, dir: &Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command
            .current_dir(dir)
            .env("SLUICE_CACHE_DIR", super::root().join("target").join("test-plugin-cache"))
            .env("TEST_S3_SECRET", sluice_testkit::s3::SECRET_KEY)
            .env_remove("SLUICE_STATE_URL")
            .env_remove("SLUICE_SINK_URL");
        match self {
            Backend::Postgres(database) => {
                command.env("SLUICE_STATE_URL", database.url()).env("SLUICE_SINK_URL", database.url());
            }
            Backend::Delta => {
                command.env("SLUICE_SINK_URL", "delta+file://lake");
            }
            Backend::DeltaS3(s3) => {
                command
                    .env("SLUICE_SINK_URL", format!("delta+s3://{LAKE_BUCKET}/{LAKE_PREFIX}"))
                    .env("AWS_ENDPOINT_URL", s3.endpoint())
                    .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
                    .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
                    .env("AWS_REGION", "us-east-1");
            }
            Backend::Sqlite => {}
        }
        command
    }

    /// The `[state]` and `[sink]` sections naming this backend's databases outright, for a configuration
    /// loaded in the test's own process (where [`DATABASES`]' environment variables are not set).
    pub fn databases(&self, dir: &Path) -> String {
        let state_file = format!("sqlite://{}", dir.join("sluice-state.db").display());
        let (state, sink) = match self {
            Backend::Sqlite => {
                (state_file, format!("url = \"sqlite://{}\"", dir.join("sluice.db").display()))
            }
            Backend::Postgres(database) => {
                (database.url().to_string(), format!("url = \"{}\"", database.url()))
            }
            Backend::Delta => (state_file, format!("url = \"delta+file://{}\"", dir.join("lake").display())),
            Backend::DeltaS3(s3) => (
                state_file,
                format!(
                    "url = \"delta+s3://{LAKE_BUCKET}/{LAKE_PREFIX}\"\ns3 = {{ endpoint = \"{}\", access_key_id = \"{ACCESS_KEY}\", secret_access_key = \"{SECRET_KEY}\" }}",
                    s3.endpoint()
                ),
            ),
        };
        format!("[state]\nurl = \"{state}\"\n\n[sink]\n{sink}\n\n")
    }

    /// The rows of `sql` as text, run among `dataflow`'s tables; `Err` where the query fails (a table not
    /// made yet, say).
    pub fn try_strings(&self, dir: &Path, dataflow: &str, sql: &str) -> Result<Vec<String>, String> {
        match self {
            Backend::Sqlite => sqlite_strings(&dir.join("sluice.db"), sql),
            Backend::Postgres(database) => postgres_strings(database, &dataflow.to_ascii_lowercase(), sql),
            Backend::Delta | Backend::DeltaS3(_) => {
                self.delta_reader(&["dataflow", &self.lake(dir, dataflow), "--", sql])
            }
        }
    }

    pub fn strings(&self, dir: &Path, dataflow: &str, sql: &str) -> Vec<String> {
        self.try_strings(dir, dataflow, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A count among `dataflow`'s tables.
    pub fn count(&self, dir: &Path, dataflow: &str, sql: &str) -> i64 {
        self.strings(dir, dataflow, sql)[0].parse().unwrap()
    }

    /// The rows of `sql` as text, run in the state store.
    pub fn state_strings(&self, dir: &Path, sql: &str) -> Vec<String> {
        match self {
            Backend::Sqlite | Backend::Delta | Backend::DeltaS3(_) => {
                sqlite_strings(&dir.join("sluice-state.db"), sql)
            }
            Backend::Postgres(database) => postgres_strings(database, "_sluice", sql),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn state_count(&self, dir: &Path, sql: &str) -> i64 {
        self.state_strings(dir, sql)[0].parse().unwrap()
    }

    /// Whether `dataflow`'s `table` exists.
    pub fn has_table(&self, dir: &Path, dataflow: &str, table: &str) -> bool {
        let sql = match self {
            Backend::Delta => {
                return Path::new(&self.lake(dir, dataflow)).join(table).join("_delta_log").is_dir();
            }
            Backend::DeltaS3(s3) => {
                let log = format!("{LAKE_PREFIX}/{}/{table}/_delta_log/", dataflow.to_ascii_lowercase());
                return !s3.keys(LAKE_BUCKET, &log).is_empty();
            }
            Backend::Sqlite => format!("SELECT count(*) FROM sqlite_master WHERE name = '{table}'"),
            Backend::Postgres(_) => format!(
                "SELECT count(*) FROM pg_tables WHERE schemaname = '{}' AND tablename = '{table}'",
                dataflow.to_ascii_lowercase()
            ),
        };
        self.count(dir, dataflow, &sql) > 0
    }

    /// Every row of `table` in storage order with its identity, and the table's columns and types: what
    /// "the same query results, byte for byte" compares.
    pub fn dump(&self, dir: &Path, dataflow: &str, table: &str) -> String {
        let (columns, rows) = match self {
            Backend::Sqlite => (
                format!("SELECT name || ' ' || type FROM pragma_table_info('{table}')"),
                sqlite_rows_typed(&dir.join("sluice.db"), table),
            ),
            Backend::Postgres(_) => (
                format!(
                    "SELECT column_name || ' ' || data_type FROM information_schema.columns
                     WHERE table_schema = '{}' AND table_name = '{table}' ORDER BY ordinal_position",
                    dataflow.to_ascii_lowercase()
                ),
                self.strings(dir, dataflow, &format!("SELECT t::text FROM {table} t ORDER BY _sluice_row")),
            ),
            Backend::Delta | Backend::DeltaS3(_) => {
                let table_at = format!("{}/{table}", self.lake(dir, dataflow));
                let columns = self.delta_reader(&["columns", &table_at]).unwrap();
                let rows = self.strings(
                    dir,
                    dataflow,
                    &format!("SELECT * FROM {table} ORDER BY _sluice_run, _sluice_object, _sluice_line"),
                );
                return format!("{columns:?}\n{}", rows.join("\n"));
            }
        };
        format!("{:?}\n{}", self.strings(dir, dataflow, &columns), rows.join("\n"))
    }

    /// Loses the tables database, as a restore from an old backup would, keeping the state store.
    pub fn lose_tables(&self, dir: &Path, dataflows: &[&str]) {
        match self {
            Backend::Sqlite => {
                for file in ["sluice.db", "sluice.db-wal", "sluice.db-shm"] {
                    let _ = std::fs::remove_file(dir.join(file));
                }
            }
            Backend::Delta => {
                for dataflow in dataflows {
                    let _ = std::fs::remove_dir_all(self.lake(dir, dataflow));
                }
            }
            Backend::DeltaS3(s3) => {
                for dataflow in dataflows {
                    s3.delete_prefix(
                        LAKE_BUCKET,
                        &format!("{LAKE_PREFIX}/{}/", dataflow.to_ascii_lowercase()),
                    );
                }
            }
            Backend::Postgres(database) => {
                let mut client = database.client();
                for dataflow in dataflows {
                    client
                        .batch_execute(&format!("DROP SCHEMA {} CASCADE", dataflow.to_ascii_lowercase()))
                        .unwrap();
                }
            }
        }
    }

    /// Runs a statement in the state store.
    pub fn state_execute(&self, dir: &Path, sql: &str) {
        match self {
            Backend::Sqlite | Backend::Delta | Backend::DeltaS3(_) => {
                Connection::open(dir.join("sluice-state.db")).unwrap().execute_batch(sql).unwrap();
            }
            Backend::Postgres(database) => {
                database.client().batch_execute(&format!("SET search_path TO _sluice; {sql}")).unwrap();
            }
        }
    }

    /// Ends Sluice's sessions on the server, as a restart would; 0 on SQLite.
    pub fn terminate_sessions(&self) -> u64 {
        match self {
            Backend::Sqlite | Backend::Delta | Backend::DeltaS3(_) => 0,
            Backend::Postgres(database) => database.terminate_sessions(),
        }
    }

    /// Ends the PostgreSQL sessions whose `application_name` is `LIKE` `pattern`.
    pub fn terminate_sessions_named(&self, pattern: &str) -> u64 {
        match self {
            Backend::Sqlite | Backend::Delta | Backend::DeltaS3(_) => 0,
            Backend::Postgres(database) => database.terminate_sessions_named(pattern),
        }
    }

    /// `dataflow`'s folder of Delta tables: in the test's folder, or on its S3 server.
    fn lake(&self, dir: &Path, dataflow: &str) -> String {
        let dataflow = dataflow.to_ascii_lowercase();
        match self {
            Backend::DeltaS3(_) => format!("s3://{LAKE_BUCKET}/{LAKE_PREFIX}/{dataflow}"),
            _ => dir.join("lake").join(dataflow).display().to_string(),
        }
    }

    /// What the independent Delta reader prints for `args`, a line each.
    fn delta_reader(&self, args: &[&str]) -> Result<Vec<String>, String> {
        let mut reader = Command::new(super::root().join("tests/support/python.sh"));
        reader.arg("delta_reader.py");
        if let Backend::DeltaS3(s3) = self {
            reader
                .env("READER_S3_ENDPOINT", s3.endpoint())
                .env("READER_S3_ACCESS_KEY", ACCESS_KEY)
                .env("READER_S3_SECRET_KEY", SECRET_KEY);
        }
        let output = reader.args(args).output().map_err(|e| format!("cannot run the Delta reader: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect())
    }
}

/// The rows of `sql` in the SQLite file at `path`, each as text.
pub fn sqlite_strings(path: &Path, sql: &str) -> Result<Vec<String>, String> {
    if !path.exists() {
        return Err(format!("{} does not exist", path.display()));
    }
    let connection = Connection::open(path).map_err(|e| e.to_string())?;
    let mut statement = connection.prepare(sql).map_err(|e| e.to_string())?;
    let rows = statement
        .query_map([], |row| {
            Ok(match row.get_ref(0)? {
                rusqlite::types::ValueRef::Null => String::new(),
                rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                rusqlite::types::ValueRef::Real(f) => f.to_string(),
                value => String::from_utf8_lossy(value.as_bytes().unwrap_or_default()).into_owned(),
            })
        })
        .map_err(|e| e.to_string())?;
    rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
}

/// Every row of `table` with its rowid, each value with its SQLite type.
fn sqlite_rows_typed(path: &Path, table: &str) -> Vec<String> {
    let connection = Connection::open(path).unwrap();
    let mut statement = connection.prepare(&format!("SELECT rowid, * FROM {table} ORDER BY rowid")).unwrap();
    let width = statement.column_count();
    let mut rows = statement.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        let values: Vec<rusqlite::types::Value> = (0..width).map(|i| row.get(i).unwrap()).collect();
        out.push(format!("{values:?}"));
    }
    out
}

fn postgres_strings(database: &TestDatabase, schema: &str, sql: &str) -> Result<Vec<String>, String> {
    let mut client = database.client();
    client.batch_execute(&format!("SET search_path TO \"{schema}\"")).map_err(|e| e.to_string())?;
    let rows = client.simple_query(sql).map_err(|e| e.to_string())?;
    Ok(rows
        .iter()
        .filter_map(|message| match message {
            postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or_default().to_string()),
            _ => None,
        })
        .collect())
}
