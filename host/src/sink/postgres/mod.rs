//! The tables sink on PostgreSQL. Each dataflow has a schema of its own, named after it in lower case
//! (`Orders` writes `orders.orders`), holding its table and Sluice's bookkeeping: `_sluice_objects`
//! (markers), `_sluice_rejects`, `_sluice_versions`, `_sluice_version_columns`, `_sluice_tables` and the
//! undo log `_sluice_undo_TABLE`. A dataflow of several tables (a Stripe source) opens a sink per table
//! under the scope `Dataflow/table`: its table goes in the dataflow's schema, its bookkeeping in a schema
//! of the scope's own (`billing/customers`), so no two tables' markers or versions mix.
//!
//! Rows are loaded with `COPY ... FROM STDIN`, one object per transaction together with its marker, as on
//! SQLite. PostgreSQL has no stable rowid, so every table has its own `_sluice_row` identity, which Sluice
//! fills itself from blocks of the identity's sequence: a run's rows lie above the last block handed out
//! before it began, and rows a run replaced or merged over go to the undo log with their `_sluice_row`,
//! to be put back under it by a rollback.

mod copy;
mod object;

use super::column::ColumnType;
use super::{
    CommittedObject, ObjectWrite, RolledBack, SinkError, StoredReject, TableSink, TableSpec, log_renamed,
};
use crate::batch::RejectStage;
use crate::object::ObjectMeta;
use crate::pg::{self, PooledClient, quote};
use object::PostgresObject;
use postgres::GenericClient;
use postgres::error::SqlState;

/// Sluice's own columns, first in every table: the identity, then where each row came from.
const IDENTITY: &str = "_sluice_row";
const LINEAGE_COLUMNS: [&str; 3] = ["_sluice_object", "_sluice_line", "_sluice_run"];
/// Sluice's own columns in a table: the identity and the lineage.
const SLUICE_COLUMNS: usize = 1 + LINEAGE_COLUMNS.len();
/// How long taking the fence waits for an older run's object commit before it ends that run's session
/// (see `fence`): commits in flight take milliseconds; only a frozen run holds it longer.
const FENCE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// The most columns PostgreSQL holds in a table (`MaxHeapAttributeNumber`).
const MAX_COLUMNS: usize = 1600;
/// The columns a table's undo copy has beyond the table's own (`_sluice_removed_by`).
const UNDO_EXTRA_COLUMNS: usize = 1;
/// Identities an object takes from the table's sequence at a time: one call for many rows, where a
/// sequence's default would be called for each.
const ROW_BLOCK: i64 = 10_000;

/// Sluice's bookkeeping tables that hold a `run_id` each.
const PER_RUN: [&str; 4] =
    ["_sluice_objects", "_sluice_rejects", "_sluice_versions", "_sluice_version_columns"];

/// The bookkeeping of a dataflow's schema; `{s}` is the schema, quoted.
const SCHEMA: &str = "
    CREATE SCHEMA IF NOT EXISTS {s};
    CREATE TABLE IF NOT EXISTS {s}._sluice_objects (
        key TEXT NOT NULL,
        etag TEXT NOT NULL,
        size BIGINT NOT NULL,
        last_modified BIGINT NOT NULL,
        rows BIGINT NOT NULL,
        rejected BIGINT NOT NULL,
        run_id BIGINT NOT NULL,
        committed_at BIGINT NOT NULL,
        PRIMARY KEY (key, etag)
    );
    CREATE TABLE IF NOT EXISTS {s}._sluice_rejects (
        object TEXT NOT NULL,
        etag TEXT NOT NULL,
        line BIGINT NOT NULL,
        reason TEXT NOT NULL,
        raw TEXT NOT NULL,
        run_id BIGINT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS _sluice_rejects_by_object ON {s}._sluice_rejects (object);
    -- The step that refused a row (parse, template, sink; empty where stored before stages were), and the
    -- run that tried it again: it is no longer rejected (or was rejected again by that run).
    ALTER TABLE {s}._sluice_rejects ADD COLUMN IF NOT EXISTS stage TEXT NOT NULL DEFAULT '',
        ADD COLUMN IF NOT EXISTS replayed_by BIGINT;
    CREATE INDEX IF NOT EXISTS _sluice_rejects_by_replay ON {s}._sluice_rejects (replayed_by);
    CREATE TABLE IF NOT EXISTS {s}._sluice_versions (
        run_id BIGINT PRIMARY KEY,
        created_table BOOLEAN NOT NULL,
        -- Every row the run inserted has a _sluice_row above this.
        row_start BIGINT NOT NULL,
        committed_at BIGINT NOT NULL
    );
    -- A column a run added (previous_type null) or widened to text (from previous_type).
    CREATE TABLE IF NOT EXISTS {s}._sluice_version_columns (
        run_id BIGINT NOT NULL,
        name TEXT NOT NULL,
        previous_type TEXT
    );
    -- The newest fencing token of a run that wrote the table: older ones commit nothing.
    CREATE TABLE IF NOT EXISTS {s}._sluice_fence (
        fenced BOOLEAN PRIMARY KEY DEFAULT true CHECK (fenced),
        token BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS {s}._sluice_tables (
        table_name TEXT PRIMARY KEY,
        mode TEXT NOT NULL,
        key TEXT NOT NULL
    );";

/// The schema of `dataflow`'s tables.
pub fn schema_of(scope: &str) -> String {
    scope.split('/').next().unwrap_or(scope).to_ascii_lowercase()
}

/// The schema of a sink's bookkeeping: the dataflow's schema, or for one table of several, its scope's.
fn bookkeeping_schema_of(scope: &str) -> String {
    scope.to_ascii_lowercase()
}

/// A column of a table, as it is in the database.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TableColumn {
    name: String,
    kind: ColumnType,
}

/// A dataflow's table in a PostgreSQL database.
pub struct PostgresTables {
    client: PooledClient,
    dataflow: String,
    /// The schema of the bookkeeping, quoted.
    schema: String,
    /// The schema of the table, quoted: the same but for one table of several (see the module's doc).
    data_schema: String,
    spec: TableSpec,
    /// The table's columns after Sluice's own, as they are in the database; `None` until the table exists.
    columns: Option<Vec<TableColumn>>,
    /// The fencing token its commits check, once fenced.
    fence: Option<i64>,
}

impl PostgresTables {
    /// Connects to the database at `url` and makes `dataflow`'s schema where missing, for writing the table
    /// `spec` names. A table the configuration renamed is renamed with it; a merge key other than the one
    /// the table's rows were merged on is refused.
    pub fn open(url: &str, dataflow: &str, spec: &TableSpec) -> Result<PostgresTables, SinkError> {
        let error = |message: String| SinkError::table(spec.name.clone(), message);
        let mut client = pg::connect(url).map_err(error)?;
        let schema = quote(&bookkeeping_schema_of(dataflow));
        let data_schema = quote(&schema_of(dataflow));
        // The DDL runs only where something is missing: even `CREATE INDEX IF NOT EXISTS` takes a lock that
        // waits for every open transaction on its table, so a run frozen mid-object (its lease taken over)
        // would hold the run taking over at its open forever. The catalog lookup takes no such lock.
        let complete = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AND to_regnamespace($3) IS NOT NULL",
                &[
                    &format!("{schema}._sluice_tables"),
                    &format!("{schema}._sluice_rejects_by_replay"),
                    &data_schema,
                ],
            )
            .map_err(|e| error(pg::describe(&e)))?
            .get::<_, bool>(0);
        if !complete {
            let create =
                format!("CREATE SCHEMA IF NOT EXISTS {data_schema}; {}", SCHEMA.replace("{s}", &schema));
            client.batch_execute(&create).map_err(|e| error(pg::describe(&e)))?;
        }
        let mut sink = PostgresTables {
            client,
            dataflow: dataflow.to_string(),
            schema,
            data_schema,
            spec: spec.clone(),
            columns: None,
            fence: None,
        };
        sink.follow_rename()?;
        let table = sink.qualified(&spec.name);
        sink.columns = read_columns(&mut *sink.client, &table)
            .map_err(|message| SinkError::table(spec.name.clone(), message))?;
        sink.record_spec()?;
        Ok(sink)
    }

    fn error(&self, message: impl ToString) -> SinkError {
        SinkError::table(self.spec.name.clone(), message.to_string())
    }

    /// `"schema"."table"`.
    fn qualified(&self, table: &str) -> String {
        format!("{}.{}", self.data_schema, quote(table))
    }

    /// The table's name in the last run, if the configuration has changed it since.
    fn recorded(&mut self) -> Result<Option<(String, String, String)>, SinkError> {
        let rows = self
            .client
            .query(&format!("SELECT table_name, mode, key FROM {}._sluice_tables", self.schema), &[])
            .map_err(|e| self.error(pg::describe(&e)))?;
        Ok(rows.first().map(|row| (row.get(0), row.get(1), row.get(2))))
    }

    /// Renames the table (and its undo log) when the configuration gave it a new name, so its rows, versions
    /// and markers stay together.
    fn follow_rename(&mut self) -> Result<(), SinkError> {
        let Some((old, _, _)) = self.recorded()? else { return Ok(()) };
        if old == self.spec.name {
            return Ok(());
        }
        let new = self.spec.name.clone();
        let mut sql = String::new();
        for (from, to) in [(old.clone(), new.clone()), (undo_table(&old), undo_table(&new))] {
            sql.push_str(&format!(
                "DO $$ BEGIN IF to_regclass('{q}') IS NOT NULL THEN ALTER TABLE {q} RENAME TO {to}; END IF; END $$;",
                q = self.qualified(&from).replace('\'', "''"),
                to = quote(&to)
            ));
        }
        sql.push_str(&format!(
            "UPDATE {}._sluice_tables SET table_name = '{}'",
            self.schema,
            new.replace('\'', "''")
        ));
        let mut transaction =
            self.client.transaction().map_err(|e| SinkError::table(new.clone(), pg::describe(&e)))?;
        transaction.batch_execute(&sql).and_then(|()| transaction.commit()).map_err(|e| {
            SinkError::table(
                new.clone(),
                format!("renaming table `{old}` to `{new}` failed: {}", pg::describe(&e)),
            )
        })?;
        log_renamed(&self.dataflow, &old, &new);
        Ok(())
    }

    /// Records how the table is written; a table that holds rows merged on one key is not merged on
    /// another, since its rows would no longer be unique by it.
    fn record_spec(&mut self) -> Result<(), SinkError> {
        let (mode, key) = self.spec.recorded_form();
        let recorded = self.recorded()?;
        if recorded.as_ref().is_some_and(|(table, m, k)| *table == self.spec.name && *m == mode && *k == key)
        {
            return Ok(());
        }
        let recorded = recorded.as_ref().map(|(_, mode, key)| (mode.as_str(), key.as_str()));
        self.spec
            .check_merge_key(&self.dataflow, recorded, self.columns.is_some())
            .map_err(|e| self.error(e))?;
        let (schema, name) = (self.schema.clone(), self.spec.name.clone());
        let error = |e: postgres::Error| SinkError::table(name.clone(), pg::describe(&e));
        // An upsert, not a plain insert: workers open the sink at the same moment.
        let mut transaction = self.client.transaction().map_err(error)?;
        transaction
            .execute(&format!("DELETE FROM {schema}._sluice_tables WHERE table_name <> $1"), &[&name])
            .map_err(error)?;
        transaction
            .execute(
                &format!(
                    "INSERT INTO {schema}._sluice_tables (table_name, mode, key) VALUES ($1, $2, $3)
                     ON CONFLICT (table_name) DO UPDATE SET mode = excluded.mode, key = excluded.key"
                ),
                &[&name, &mode, &key],
            )
            .map_err(error)?;
        transaction.commit().map_err(error)
    }

    /// Lets go of versions beyond the newest `TableSpec::versions`.
    fn prune_versions(&mut self) -> Result<(), SinkError> {
        let name = self.spec.name.clone();
        let (schema, undo) = (self.schema.clone(), self.qualified(&undo_table(&name)));
        let keep = i64::from(self.spec.versions);
        let error = |e: postgres::Error| SinkError::table(name.clone(), pg::describe(&e));
        let mut transaction = self.client.transaction().map_err(error)?;
        let oldest_kept = transaction
            .query_opt(
                &format!(
                    "SELECT run_id FROM {schema}._sluice_versions ORDER BY run_id DESC LIMIT 1 OFFSET $1"
                ),
                &[&(keep - 1)],
            )
            .map_err(error)?;
        let Some(oldest_kept) = oldest_kept.map(|row| row.get::<_, i64>(0)) else { return Ok(()) };
        for bookkeeping in ["_sluice_versions", "_sluice_version_columns"] {
            transaction
                .execute(&format!("DELETE FROM {schema}.{bookkeeping} WHERE run_id < $1"), &[&oldest_kept])
                .map_err(error)?;
        }
        if read_columns(&mut transaction, &undo)
            .map_err(|message| SinkError::table(name.clone(), message))?
            .is_some()
        {
            transaction
                .execute(&format!("DELETE FROM {undo} WHERE _sluice_removed_by < $1"), &[&oldest_kept])
                .map_err(error)?;
        }
        transaction.commit().map_err(error)
    }

    fn spec_error(&self, e: postgres::Error) -> SinkError {
        self.error(pg::describe(&e))
    }
}

impl TableSink for PostgresTables {
    fn newest_run(&mut self) -> Result<Option<i64>, SinkError> {
        let sql = format!("SELECT max(run_id) FROM {}._sluice_versions", self.schema);
        let row = self.client.query_one(&sql, &[]).map_err(|e| self.spec_error(e))?;
        Ok(row.get(0))
    }

    fn pairs(&mut self, key: &str, value: &str) -> Result<Vec<(String, String)>, SinkError> {
        let has = |column: &str| self.columns.iter().flatten().any(|c| c.name == column);
        if !has(key) || !has(value) {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {}, {} FROM {} ORDER BY _sluice_row",
            quote(key),
            quote(value),
            self.qualified(&self.spec.name)
        );
        let rows = self.client.query(&sql, &[]).map_err(|e| self.spec_error(e))?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    fn committed_objects(&mut self) -> Result<Vec<CommittedObject>, SinkError> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT key, etag, size, last_modified, rows, rejected, run_id FROM {}._sluice_objects",
                    self.schema
                ),
                &[],
            )
            .map_err(|e| self.spec_error(e))?;
        Ok(rows
            .iter()
            .map(|row| CommittedObject {
                key: row.get(0),
                etag: row.get(1),
                size: row.get::<_, i64>(2) as u64,
                last_modified: crate::time::from_millis(row.get(3)),
                rows: row.get::<_, i64>(4) as u64,
                rejected: row.get::<_, i64>(5) as u64,
                run_id: row.get(6),
            })
            .collect())
    }

    fn remove(&mut self) -> Result<u64, SinkError> {
        let (table, undo) = (self.qualified(&self.spec.name), self.qualified(&undo_table(&self.spec.name)));
        let schema = self.schema.clone();
        let name = self.spec.name.clone();
        let error = |e: postgres::Error| SinkError::table(name.clone(), pg::describe(&e));
        let mut transaction = self.client.transaction().map_err(error)?;
        let rows =
            if self.columns.is_some() { count_rows(&mut transaction, &table).map_err(error)? } else { 0 };
        let mut drop = format!("DROP TABLE IF EXISTS {table}, {undo}");
        for bookkeeping in PER_RUN.iter().chain(&["_sluice_tables", "_sluice_fence"]) {
            drop.push_str(&format!(", {schema}.{bookkeeping}"));
        }
        transaction.batch_execute(&drop).map_err(error)?;
        // The schemas go too, unless someone keeps tables of their own in them (or other tables of the
        // dataflow are there).
        let mut schemas = vec![bookkeeping_schema_of(&self.dataflow), schema_of(&self.dataflow)];
        schemas.dedup();
        for schema in schemas {
            let left: i64 = transaction
                .query_one(
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
                    &[&schema],
                )
                .map_err(error)?
                .get(0);
            if left == 0 {
                transaction.batch_execute(&format!("DROP SCHEMA {}", quote(&schema))).map_err(error)?;
            }
        }
        transaction.commit().map_err(error)?;
        self.columns = None;
        Ok(rows)
    }

    fn rollback_last(&mut self) -> Result<Option<RolledBack>, SinkError> {
        let name = self.spec.name.clone();
        let (schema, table, undo) =
            (self.schema.clone(), self.qualified(&name), self.qualified(&undo_table(&name)));
        let error = |e: postgres::Error| SinkError::table(name.clone(), pg::describe(&e));
        let mut transaction = self.client.transaction().map_err(error)?;
        let last = transaction
            .query_opt(
                &format!("SELECT run_id, created_table, row_start FROM {schema}._sluice_versions ORDER BY run_id DESC LIMIT 1"),
                &[],
            )
            .map_err(error)?;
        let Some(last) = last else { return Ok(None) };
        let (run_id, created_table, row_start): (i64, bool, i64) = (last.get(0), last.get(1), last.get(2));
        let rows_removed = if created_table {
            let rows = count_rows(&mut transaction, &table).map_err(error)?;
            transaction.batch_execute(&format!("DROP TABLE IF EXISTS {table}, {undo}")).map_err(error)?;
            rows
        } else {
            // The run's rows all lie above its row start; `_sluice_run` guards against anyone else's.
            let rows = transaction
                .execute(
                    &format!("DELETE FROM {table} WHERE {IDENTITY} > $1 AND _sluice_run = $2"),
                    &[&row_start, &run_id],
                )
                .map_err(error)?;
            let undo_exists = read_columns(&mut transaction, &undo)
                .map_err(|message| SinkError::table(name.clone(), message))?
                .is_some();
            if undo_exists {
                // The rows the run replaced or merged over go back, under their old identities.
                let columns = read_columns(&mut transaction, &table)
                    .map_err(|message| SinkError::table(name.clone(), message))?
                    .unwrap_or_default();
                let list = all_columns(&columns);
                transaction
                    .execute(
                        &format!("INSERT INTO {table} ({list}) SELECT {list} FROM {undo} WHERE _sluice_removed_by = $1 ORDER BY {IDENTITY}"),
                        &[&run_id],
                    )
                    .and_then(|_| transaction.execute(&format!("DELETE FROM {undo} WHERE _sluice_removed_by = $1"), &[&run_id]))
                    .map_err(error)?;
            }
            let changed = transaction
                .query(
                    &format!(
                        "SELECT name, previous_type FROM {schema}._sluice_version_columns WHERE run_id = $1"
                    ),
                    &[&run_id],
                )
                .map_err(error)?;
            for change in changed {
                let (column, previous): (String, Option<String>) = (change.get(0), change.get(1));
                let targets: Vec<&String> = if undo_exists { vec![&table, &undo] } else { vec![&table] };
                for target in targets {
                    let alter = match &previous {
                        None => format!("ALTER TABLE {target} DROP COLUMN IF EXISTS {}", quote(&column)),
                        Some(previous) => format!(
                            "ALTER TABLE {target} ALTER COLUMN {c} TYPE {previous} USING {c}::{previous}",
                            c = quote(&column)
                        ),
                    };
                    transaction.batch_execute(&alter).map_err(error)?;
                }
            }
            rows
        };
        for bookkeeping in PER_RUN {
            transaction
                .execute(&format!("DELETE FROM {schema}.{bookkeeping} WHERE run_id = $1"), &[&run_id])
                .map_err(error)?;
        }
        // Rows the run replayed are rejected again, as they were before it.
        transaction
            .execute(
                &format!("UPDATE {schema}._sluice_rejects SET replayed_by = NULL WHERE replayed_by = $1"),
                &[&run_id],
            )
            .map_err(error)?;
        let columns = read_columns(&mut transaction, &table)
            .map_err(|message| SinkError::table(name.clone(), message))?;
        transaction.commit().map_err(error)?;
        self.columns = columns;
        Ok(Some(RolledBack { run_id, rows_removed }))
    }

    fn finish_run(&mut self) -> Result<(), SinkError> {
        self.prune_versions()
    }

    fn fence(&mut self, token: i64) -> Result<(), SinkError> {
        let schema = self.schema.clone();
        let table = self.spec.name.clone();
        let error = |e: &postgres::Error| SinkError::table(table.clone(), pg::describe(e));
        // The run's token recorded already (by another of its writers or workers): nothing to take, and no
        // write that would wait for their commits.
        let recorded = self
            .client
            .query_opt(&format!("SELECT token FROM {schema}._sluice_fence"), &[])
            .map_err(|e| error(&e))?
            .map(|row| row.get::<_, i64>(0));
        if recorded == Some(token) {
            self.fence = Some(token);
            return Ok(());
        }
        let record = format!(
            "INSERT INTO {schema}._sluice_fence AS f (token) VALUES ($1) ON CONFLICT (fenced)
             DO UPDATE SET token = excluded.token WHERE excluded.token >= f.token RETURNING token"
        );
        // An older run's object commit in flight holds the fence (FOR SHARE) until it commits, and this
        // run waits for it. A run frozen inside one (a stopped VM) would hold it for as long as it is
        // frozen; this run holds the lease, so such a transaction belongs to a run fenced out already:
        // after FENCE_WAIT its session is ended (its object rolled back, to be loaded again) and the
        // fence taken.
        let mut ended_holders = false;
        let newest: Option<i64> = loop {
            let mut transaction = self.client.transaction().map_err(|e| error(&e))?;
            transaction
                .batch_execute(&format!("SET LOCAL lock_timeout = '{}ms'", FENCE_WAIT.as_millis()))
                .map_err(|e| error(&e))?;
            match transaction.query_opt(&record, &[&token]) {
                Ok(row) => {
                    transaction.commit().map_err(|e| error(&e))?;
                    break row.map(|row| row.get(0));
                }
                Err(e) if !ended_holders && e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                    drop(transaction);
                    let holders = format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks
                         WHERE relation = '{schema}._sluice_fence'::regclass AND pid <> pg_backend_pid()"
                    );
                    self.client.batch_execute(&holders).map_err(|e| {
                        SinkError::table(
                            table.clone(),
                            format!(
                                "a run taken over still holds the fence of `{schema}` after {FENCE_WAIT:?}, and ending its session failed: {}",
                                pg::describe(&e)
                            ),
                        )
                    })?;
                    tracing::warn!(
                        table = table.as_str(),
                        "ended the sessions of a run taken over that held the table's fence"
                    );
                    ended_holders = true;
                }
                Err(e) => return Err(error(&e)),
            }
        };
        if newest != Some(token) {
            let newest = object::newest_fence(&mut *self.client, &schema)
                .map_err(|e| SinkError::table(self.spec.name.clone(), pg::describe(&e)))?;
            return Err(SinkError::table(self.spec.name.clone(), super::fenced_out(token, newest)));
        }
        self.fence = Some(token);
        Ok(())
    }

    fn begin_object<'s>(
        &'s mut self,
        object: &ObjectMeta,
        run_id: i64,
    ) -> Result<Box<dyn ObjectWrite + 's>, SinkError> {
        Ok(Box::new(self.begin(object, run_id, None)?))
    }

    fn begin_replay<'s>(
        &'s mut self,
        object: &ObjectMeta,
        run_id: i64,
        retried: &[StoredReject],
    ) -> Result<Box<dyn ObjectWrite + 's>, SinkError> {
        Ok(Box::new(self.begin(object, run_id, Some(retried.to_vec()))?))
    }
}

impl PostgresTables {
    /// Starts writing `object`'s rows in a transaction of its own: loaded from its file, or, where
    /// `replaying` holds its rejected rows, tried again from them.
    fn begin(
        &mut self,
        object: &ObjectMeta,
        run_id: i64,
        replaying: Option<Vec<StoredReject>>,
    ) -> Result<PostgresObject<'_>, SinkError> {
        let table = self.qualified(&self.spec.name);
        let undo = self.qualified(&undo_table(&self.spec.name));
        let transaction = self
            .client
            .transaction()
            .map_err(|e| SinkError::table(self.spec.name.clone(), pg::describe(&e)))?;
        Ok(PostgresObject::new(
            transaction,
            object::Target { schema: &self.schema, table, undo, spec: &self.spec },
            &mut self.columns,
            object.clone(),
            run_id,
            self.fence,
            replaying,
        ))
    }
}

/// The undo log of `table`: rows runs replaced or merged over, with the run that did and their identity.
fn undo_table(table: &str) -> String {
    format!("_sluice_undo_{table}")
}

/// The columns of `table` (schema-qualified, quoted) after Sluice's own, in order; `None` where it does not
/// exist.
fn read_columns(client: &mut impl GenericClient, table: &str) -> Result<Option<Vec<TableColumn>>, String> {
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .map_err(|e| pg::describe(&e))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&table],
        )
        .map_err(|e| pg::describe(&e))?;
    let own =
        |name: &str| name == IDENTITY || LINEAGE_COLUMNS.contains(&name) || name == "_sluice_removed_by";
    Ok(Some(
        rows.iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
            .filter(|(name, _)| !own(name))
            .map(|(name, kind)| TableColumn { kind: ColumnType::from_catalog(&kind), name })
            .collect(),
    ))
}

/// Every column of a table, Sluice's first, quoted and comma-separated.
fn all_columns(columns: &[TableColumn]) -> String {
    std::iter::once(IDENTITY)
        .chain(LINEAGE_COLUMNS)
        .map(quote)
        .chain(columns.iter().map(|c| quote(&c.name)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn count_rows(client: &mut impl GenericClient, table: &str) -> Result<u64, postgres::Error> {
    client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).map(|row| row.get::<_, i64>(0) as u64)
}

/// The rejected rows `dataflow` keeps in the database at `url` (of run `run` only, where given).
pub fn stored_rejects(url: &str, dataflow: &str, run: Option<i64>) -> Result<Vec<StoredReject>, String> {
    let mut client = pg::connect(url)?;
    let rejects = format!("{}._sluice_rejects", quote(&schema_of(dataflow)));
    let read = |client: &mut PooledClient| -> Result<Vec<StoredReject>, postgres::Error> {
        let exists: bool = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&rejects])?.get(0);
        if !exists {
            return Ok(Vec::new());
        }
        // A schema only read since an upgrade has no stages yet. Rows a replay took out of the rejects
        // stay for a rollback of it, but are rejected no more.
        let keeps_stages: bool = client
            .query_one(
                "SELECT count(*) > 0 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'replayed_by'",
                &[&rejects],
            )?
            .get(0);
        let (stage, pending) = if keeps_stages { ("stage", "replayed_by IS NULL") } else { ("''", "true") };
        let rows = client.query(
            &format!(
                "SELECT run_id, object, etag, line, reason, raw, {stage} FROM {rejects}
                 WHERE ($1::BIGINT IS NULL OR run_id = $1) AND {pending}"
            ),
            &[&run],
        )?;
        Ok(rows
            .iter()
            .map(|row| StoredReject {
                run_id: row.get(0),
                object: row.get(1),
                etag: row.get(2),
                line: row.get::<_, i64>(3) as u64,
                reason: row.get(4),
                raw: row.get(5),
                stage: RejectStage::parse(row.get(6)),
            })
            .collect())
    };
    read(&mut client)
        .map_err(|e| format!("cannot read the rejected rows of `{dataflow}`: {}", pg::describe(&e)))
}

/// The columns `key` and `value` of `dataflow`'s `table` in the database at `url`; empty where the table
/// or either column is not there.
pub fn stored_pairs(
    url: &str,
    dataflow: &str,
    table: &str,
    key: &str,
    value: &str,
) -> Result<Vec<(String, String)>, String> {
    let mut client = pg::connect(url)?;
    let qualified = format!("{}.{}", quote(&schema_of(dataflow)), quote(table));
    let read = |client: &mut PooledClient| -> Result<Vec<(String, String)>, String> {
        let columns = read_columns(&mut **client, &qualified)?.unwrap_or_default();
        if ![key, value].iter().all(|name| columns.iter().any(|c| c.name == *name)) {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT {}, {} FROM {qualified} ORDER BY _sluice_row", quote(key), quote(value));
        let rows = client.query(&sql, &[]).map_err(|e| pg::describe(&e))?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    };
    read(&mut client).map_err(|e| format!("cannot read `{table}` of `{dataflow}`: {e}"))
}

/// The rows and columns of `dataflow`'s `table` in the database at `url`; `None` where it does not exist or
/// the server cannot be reached.
pub fn table_shape(url: &str, dataflow: &str, table: &str) -> Option<(u64, usize)> {
    let mut client = pg::connect(url).ok()?;
    let qualified = format!("{}.{}", quote(&schema_of(dataflow)), quote(table));
    let columns = read_columns(&mut *client, &qualified).ok()??;
    let rows = count_rows(&mut *client, &qualified).ok()?;
    Some((rows, columns.len() + LINEAGE_COLUMNS.len() + 1))
}
