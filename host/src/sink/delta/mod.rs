//! The tables sink on Delta Lake: each dataflow's table is a Delta table in a folder of the sink's location
//! (`delta+file:///var/lib/lake` puts `Orders`' table at `/var/lib/lake/orders/orders`), written by
//! delta-rs as Parquet, and readable by Spark, DuckDB, Polars or Trino as it is.
//!
//! Delta has no transaction across tables, and a commit per object would leave a bucket of small files as
//! as many tiny Parquet files and log entries. So objects are grouped: an object's rows join the group when
//! the object commits (its own files, where it is large), and the group becomes one Delta commit every
//! `commit_objects` objects, every `commit_interval`, and at the end of the run. Each commit adds a
//! zero-row *marker file* whose tags list the objects the commit holds: the markers are part of the table's
//! state, so they survive checkpoints and log clean-up, a RESTORE takes them back with the rows, and the
//! runner squares its ledger with them as with the databases' marker tables. An object the ledger has as
//! loaded whose group never committed (a killed process) is not among the markers, and is loaded again.
//!
//! Rejected rows go to a second Delta table beside (`orders/_sluice_rejects/orders`), committed just before
//! the rows' group, each file tagged with its group; a group that then fails to commit leaves its rejects
//! without a marker, and readers (and the next commit, which removes them) know them by that.
//!
//! A run is a range of Delta versions: each marker records the version the table had before its run, and a
//! rollback RESTOREs the table to it. Every commit carries the run's fencing token as the application
//! transaction `sluice.fence`, so a run whose lease another run took over conflicts and commits nothing.

mod convert;
mod encoder;
mod files;
mod location;
mod object;
mod prune;

use super::{
    CommittedObject, ObjectWrite, Optimized, RolledBack, SinkError, StoredReject, TableSink, TableSpec,
    fenced_out, log_renamed,
};
use crate::config::{DeltaRoot, ParquetCompression, WriteMode};
use crate::object::ObjectMeta;
use convert::TableColumn;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, MetadataExt, Remove, Transaction};
use deltalake::operations::create::CreateBuilder;
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableError};
use files::{FileInfo, MarkerTags};
use location::{Location, TableAt};
use object::DeltaObject;
use std::collections::HashSet;

/// The application transaction every commit carries the writing run's fencing token in.
const FENCE_APP: &str = "sluice.fence";
/// Table properties that say what the table is for.
const PURPOSE_PROPERTY: &str = "sluice.purpose";
const KIND_PROPERTY: &str = "sluice.kind";
/// Retries of a commit that met a concurrent one it does not conflict with.
const COMMIT_RETRIES: usize = 5;

/// A dataflow's table in a folder of Delta tables.
pub struct DeltaTables {
    runtime: tokio::runtime::Runtime,
    spec: TableSpec,
    /// The table's location, and its rejected rows' table's.
    at: TableAt,
    rejects_at: TableAt,
    /// The table as last read; `None` until it exists.
    table: Option<DeltaTable>,
    /// Objects committed as far as the runner knows, not yet in a Delta commit.
    group: Option<object::Group>,
    /// The run's fencing token, once fenced.
    fence: Option<i64>,
    /// The run that replaced the table's rows already (`replace` mode): its later commits only add.
    replaced_by: Option<i64>,
    /// The run committing, and the table's version before its first commit (-1: there was no table).
    run_before: Option<(i64, i64)>,
}

/// The folder of a dataflow's tables (one, or a Stripe source's several): `root/dataflow`.
fn dataflow_folder(scope: &str) -> String {
    scope.split('/').next().unwrap_or(scope).to_ascii_lowercase()
}

/// `root/dataflow/table`.
fn table_at(root: &Location, scope: &str, table: &str) -> Result<TableAt, String> {
    root.table(&format!("{}/{table}", dataflow_folder(scope)))
}

fn rejects_at(root: &Location, scope: &str, table: &str) -> Result<TableAt, String> {
    root.table(&format!("{}/{REJECTS}/{table}", dataflow_folder(scope)))
}

/// The folder beside a dataflow's tables that holds their rejected rows' tables.
const REJECTS: &str = "_sluice_rejects";

/// Moves a dataflow's table to the name the configuration now gives it, with its rejected rows, so that
/// its rows, versions and markers stay together: the table is the one other Delta table in the dataflow's
/// folder (a dataflow of files writes one table; a Stripe source's tables are named by their objects and
/// never renamed). Returns the old name.
async fn follow_rename(root: &Location, scope: &str, table: &str) -> Result<Option<String>, String> {
    if scope.contains('/') {
        return Ok(None);
    }
    let folder = root.table(&dataflow_folder(scope))?;
    let others: Vec<String> =
        folder.tables().await?.into_iter().filter(|name| name != table && name != REJECTS).collect();
    let [old] = others.as_slice() else { return Ok(None) };
    folder.move_folder(&format!("{old}/"), &format!("{table}/")).await?;
    folder.move_folder(&format!("{REJECTS}/{old}/"), &format!("{REJECTS}/{table}/")).await?;
    Ok(Some(old.clone()))
}

/// The runtime delta-rs's I/O runs on: the sink's calls block, as the other sinks' do.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the Delta sink's I/O: {e}"))
}

/// Refuses a folder that holds something other than a Delta table (files but no `_delta_log`), rather
/// than writing beside it.
async fn refuse_foreign(at: &TableAt) -> Result<(), String> {
    match at.foreign_file().await? {
        Some(foreign) => Err(format!(
            "`{at}` holds files but no Delta table (no _delta_log; `{foreign}`, say); Sluice writes only into an empty folder or a Delta table"
        )),
        None => Ok(()),
    }
}

/// Whether a run can write Delta tables under `root`: a probe is written there (a missing folder made).
pub fn check_location(root: &DeltaRoot) -> Result<String, String> {
    let runtime = runtime()?;
    runtime.block_on(async { Location::new(root).await?.check().await })
}

/// Rows and columns of `scope`'s `table` under `root`, for `dataflows --tables`.
pub fn table_shape(root: &DeltaRoot, scope: &str, table: &str) -> Option<(u64, usize)> {
    let runtime = runtime().ok()?;
    let loaded = runtime
        .block_on(async { table_at(&Location::new(root).await?, scope, table)?.load().await })
        .ok()??;
    let snapshot = loaded.snapshot().ok()?;
    let columns = snapshot.schema().fields().count().saturating_sub(convert::LINEAGE.len());
    let rows = runtime.block_on(files::active(&loaded)).ok()?.iter().map(|f| f.rows).sum();
    Some((rows, columns))
}

/// The rejected rows of `scope`'s `table` under `root` (of run `run` only, where given).
pub fn stored_rejects(
    root: &DeltaRoot,
    scope: &str,
    table: &str,
    run: Option<i64>,
) -> Result<Vec<StoredReject>, String> {
    runtime()?.block_on(async {
        let at = rejects_at(&Location::new(root).await?, scope, table)?;
        match at.load().await? {
            Some(loaded) => files::read_rejects(&at, &loaded, run).await,
            None => Ok(Vec::new()),
        }
    })
}

impl DeltaTables {
    /// Opens `scope`'s table that `spec` names, in the folder of Delta tables `root`.
    pub fn open(root: &DeltaRoot, scope: &str, spec: &TableSpec) -> Result<DeltaTables, SinkError> {
        let error = |message: String| SinkError::table(spec.name.clone(), message);
        let runtime = runtime().map_err(error)?;
        let (at, rejects_at, table) = runtime
            .block_on(async {
                let location = Location::new(root).await?;
                let (at, rejects_at) =
                    (table_at(&location, scope, &spec.name)?, rejects_at(&location, scope, &spec.name)?);
                // A table that does not read because the location cannot be reached or written says so
                // as `sluice check` does, rather than as the object store's error.
                let mut table = match at.load().await {
                    Ok(table) => table,
                    Err(error) => return Err(location.check().await.err().unwrap_or(error)),
                };
                if table.is_none()
                    && let Some(old) = follow_rename(&location, scope, &spec.name).await?
                {
                    log_renamed(scope, &old, &spec.name);
                    table = at.load().await?;
                }
                if table.is_none() {
                    // A first run: the location must take files, and the folder hold nothing foreign.
                    location.check().await?;
                    refuse_foreign(&at).await?;
                }
                Ok::<_, String>((at, rejects_at, table))
            })
            .map_err(error)?;
        let sink = DeltaTables {
            runtime,
            spec: spec.clone(),
            at,
            rejects_at,
            table,
            group: None,
            fence: None,
            replaced_by: None,
            run_before: None,
        };
        if let Some(recorded) = sink.recorded_mode()? {
            spec.check_merge_key(scope, Some((recorded.0.as_str(), recorded.1.as_str())), true)
                .map_err(error)?;
        }
        if let Some(table) = &sink.table {
            let snapshot = table.snapshot().map_err(|e| sink.error(e))?;
            let partitioned: &[String] = snapshot.metadata().partition_columns();
            if partitioned != spec.delta.partition_by.as_slice() {
                return Err(error(format!(
                    "the Delta table is partitioned by [{}] and `partition_by` says [{}]; a table's partitioning is fixed when it is made: restore the setting, or `sluice remove` the table to make it anew",
                    partitioned.join(", "),
                    spec.delta.partition_by.join(", ")
                )));
            }
            // A table with columns of types Sluice does not write (another tool's) is refused here, before
            // the run's fence adds a version to it.
            sink.columns()?;
        }
        Ok(sink)
    }

    fn error(&self, message: impl ToString) -> SinkError {
        SinkError::table(self.spec.name.clone(), message.to_string())
    }

    /// The write mode and merge key the table was made with (its properties).
    fn recorded_mode(&self) -> Result<Option<(String, String)>, SinkError> {
        let Some(table) = &self.table else { return Ok(None) };
        let snapshot = table.snapshot().map_err(|e| self.error(e))?;
        let configuration = snapshot.metadata().configuration();
        Ok(configuration
            .get("sluice.mode")
            .map(|mode| (mode.clone(), configuration.get("sluice.key").cloned().unwrap_or_default())))
    }

    /// The table's columns, Sluice's lineage left out; empty before the table exists.
    fn columns(&self) -> Result<Vec<TableColumn>, SinkError> {
        let Some(table) = &self.table else { return Ok(Vec::new()) };
        let snapshot = table.snapshot().map_err(|e| self.error(e))?;
        convert::table_columns(&snapshot.schema()).map_err(|e| self.error(e))
    }

    fn writer_properties(&self) -> WriterProperties {
        let compression = match self.spec.delta.compression {
            ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::try_new(3).expect("a valid level")),
            ParquetCompression::Snappy => Compression::SNAPPY,
        };
        WriterProperties::builder().set_compression(compression).build()
    }

    /// Reads the table again, as another writer may have changed it.
    fn refresh(&mut self) -> Result<(), SinkError> {
        let loaded = self.runtime.block_on(self.at.load()).map_err(|e| self.error(e))?;
        self.table = loaded;
        Ok(())
    }

    /// The markers of the table's active files.
    fn markers(&mut self) -> Result<Vec<MarkerTags>, SinkError> {
        let Some(table) = &self.table else { return Ok(Vec::new()) };
        let active = self.runtime.block_on(files::active(table)).map_err(|e| self.error(e))?;
        Ok(active.into_iter().filter_map(|file| file.marker).collect())
    }

    /// The newest fencing token a run recorded on the table.
    fn recorded_fence(&self) -> Result<Option<i64>, SinkError> {
        let Some(table) = &self.table else { return Ok(None) };
        let snapshot = table.snapshot().map_err(|e| self.error(e))?;
        self.runtime
            .block_on(snapshot.transaction_version(table.log_store().as_ref(), FENCE_APP))
            .map_err(|e| self.error(e))
    }

    /// Commits the group: its rejects, then its rows with their marker, in one Delta commit (which creates
    /// the table the first time).
    fn commit_group(&mut self) -> Result<(), SinkError> {
        let Some(mut group) = self.group.take() else { return Ok(()) };
        if group.objects.is_empty() {
            return Ok(());
        }
        self.refresh()?;
        if let (Some(token), Some(recorded)) = (self.fence, self.recorded_fence()?)
            && recorded > token
        {
            return Err(self.error(fenced_out(token, Some(recorded))));
        }
        let at = self.at.clone();
        let props = self.writer_properties();
        let columns = group.columns.clone();
        group.seal().map_err(|e| self.error(e))?;
        let mut keys = HashSet::new();
        let mut group_keys = None;
        if !group.merge_rows.is_empty() {
            let (rows, merged) = files::dedupe(std::mem::take(&mut group.merge_rows), &self.spec.key)
                .map_err(|e| self.error(e))?;
            keys = merged;
            group_keys = Some(prune::GroupKeys::of(&rows, &self.spec.key));
            let schema = convert::arrow_schema(&columns);
            let partition_by = &self.spec.delta.partition_by;
            let written =
                self.runtime.block_on(files::write(&at, props.clone(), &schema, partition_by, rows));
            group.files.extend(written.map_err(|e| self.error(e))?);
        }

        // Rows the group's rows replace: every earlier row (`replace`, at the run's first commit), or
        // the rows whose key a row of the group has (`merge`); and columns the group widened to text.
        let before = self.table.as_ref().and_then(|t| t.version());
        let active = match &self.table {
            Some(table) => self.runtime.block_on(files::active(table)).map_err(|e| self.error(e))?,
            None => Vec::new(),
        };
        let mut data_files: Vec<&FileInfo> = active.iter().filter(|f| f.marker.is_none()).collect();
        let rewrite = files::Rewrite {
            keys: (self.spec.mode == WriteMode::Merge).then_some((self.spec.key.as_slice(), &keys)),
            columns: &columns,
            widened: &group.widened,
            partition_by: &self.spec.delta.partition_by,
        };
        let mut actions: Vec<Action> = Vec::new();
        if self.spec.mode == WriteMode::Replace && self.replaced_by != Some(group.run_id) {
            actions.extend(data_files.iter().map(|f| Action::Remove(f.remove())));
        } else {
            // A merge reads only the files whose key statistics may hold the group's keys, unless a
            // column was widened, which every file takes.
            if let (Some(group_keys), true) = (&group_keys, group.widened.is_empty()) {
                let committed = data_files.len();
                data_files.retain(|file| group_keys.may_be_in(file.stats.as_deref()));
                tracing::info!(
                    table = %self.spec.name,
                    "merge: {} of {committed} committed files may hold the keys of {} objects' rows and are read; the rest are skipped by their key statistics",
                    data_files.len(),
                    group.objects.len(),
                );
            }
            let (removed, added) = self
                .runtime
                .block_on(files::rewrite(&at, props.clone(), &data_files, &rewrite))
                .map_err(|e| self.error(e))?;
            actions.extend(removed.into_iter().map(Action::Remove));
            actions.extend(added.into_iter().map(Action::Add));
        }
        // Rows of objects given up after they wrote some go, and files written before a column was
        // widened take its new type.
        let staged = self
            .runtime
            .block_on(files::rewrite_staged(
                &at,
                props,
                std::mem::take(&mut group.files),
                &group.discarded,
                &rewrite,
            ))
            .map_err(|e| self.error(e))?;
        actions.extend(staged.into_iter().map(Action::Add));

        // The rejects first: a group that then fails to commit leaves them without a marker.
        let marker_group = uuid::Uuid::new_v4().to_string();
        let rejects = std::mem::take(&mut group.rejects);
        self.commit_rejects(&rejects, &marker_group)?;

        // The version before the run's first commit: where a rollback of the run takes the table back to.
        let before = match self.run_before {
            Some((run, version)) if run == group.run_id => version,
            _ => {
                let version = before.map_or(-1, |v| v as i64);
                self.run_before = Some((group.run_id, version));
                version
            }
        };
        let tags =
            MarkerTags { group: marker_group, run_id: group.run_id, before, objects: group.objects.clone() };
        let marker = self
            .runtime
            .block_on(files::write_marker(&at, &columns, &self.spec.delta.partition_by, &tags))
            .map_err(|e| self.error(e))?;
        actions.push(Action::Add(marker));
        let objects: Vec<&str> = group.objects.iter().map(|o| o.key.as_str()).collect();
        let mut properties = CommitProperties::default().with_max_retries(COMMIT_RETRIES).with_metadata([
            ("sluice.run".to_string(), serde_json::json!(group.run_id)),
            ("sluice.objects".to_string(), serde_json::json!(objects)),
        ]);
        if let Some(token) = self.fence {
            properties = properties.with_application_transaction(Transaction::new(FENCE_APP, token));
        }
        let schema = convert::delta_schema(&columns).map_err(|e| self.error(e))?;
        let committed = match &self.table {
            None => {
                let configuration = self.table_properties();
                let create = CreateBuilder::new()
                    .with_location(at.url.as_str())
                    .with_storage_options(self.runtime.block_on(at.options()).map_err(|e| self.error(e))?)
                    .with_columns(schema.fields().cloned())
                    .with_partition_columns(self.spec.delta.partition_by.clone())
                    .with_configuration(configuration.into_iter().map(|(k, v)| (k, Some(v))))
                    .with_save_mode(SaveMode::ErrorIfExists)
                    // Sluice's own properties, beside Delta's.
                    .with_raise_if_key_not_exists(false)
                    .with_actions(actions)
                    .with_commit_properties(properties);
                self.runtime.block_on(create.into_future()).map(|_| ())
            }
            Some(table) => {
                let snapshot = table.snapshot().map_err(|e| self.error(e))?;
                let old = convert::table_columns(&snapshot.schema()).map_err(|e| self.error(e))?;
                // New columns, and a mode, key, purpose or kind the configuration changed since, go into
                // the table's metadata in the same commit.
                let wanted = self.table_properties();
                let recorded = snapshot.metadata().configuration();
                let changed: Vec<(String, String)> =
                    wanted.into_iter().filter(|(k, v)| recorded.get(k) != Some(v)).collect();
                if old != columns || !changed.is_empty() {
                    let mut metadata = convert::with_schema(snapshot.metadata().clone(), &schema)
                        .map_err(|e| self.error(e))?;
                    for (key, value) in changed {
                        metadata = metadata.add_config_key(key, value).map_err(|e| self.error(e))?;
                    }
                    actions.push(Action::Metadata(metadata));
                }
                let mode =
                    if self.spec.mode == WriteMode::Replace { SaveMode::Overwrite } else { SaveMode::Append };
                let operation = DeltaOperation::Write { mode, partition_by: None, predicate: None };
                let commit = CommitBuilder::from(properties).with_actions(actions).build(
                    Some(snapshot),
                    table.log_store(),
                    operation,
                );
                self.runtime.block_on(commit.into_future()).map(|_| ())
            }
        };
        committed.map_err(|e| self.commit_error(e))?;
        if self.spec.mode == WriteMode::Replace {
            self.replaced_by = Some(group.run_id);
        }
        self.refresh()
    }

    /// Records the run's fencing token in the table (where it exists; else the commit that makes it does),
    /// so that an older run's next commit finds it, or conflicts with it.
    fn record_fence(&mut self) -> Result<(), SinkError> {
        let (Some(token), Some(table)) = (self.fence, &self.table) else { return Ok(()) };
        let snapshot = table.snapshot().map_err(|e| self.error(e))?;
        let properties = CommitProperties::default()
            .with_max_retries(COMMIT_RETRIES)
            .with_metadata([("sluice.fence".to_string(), serde_json::json!(token))])
            .with_application_transaction(Transaction::new(FENCE_APP, token));
        let operation = DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None };
        let commit = CommitBuilder::from(properties).build(Some(snapshot), table.log_store(), operation);
        self.runtime.block_on(commit.into_future()).map_err(|e| self.commit_error(e))?;
        self.refresh()
    }

    /// Why a commit failed, with what a concurrent writer's conflict means.
    fn commit_error(&self, error: DeltaTableError) -> SinkError {
        use deltalake::kernel::transaction::TransactionError;
        let lost = match &error {
            DeltaTableError::Transaction { source: TransactionError::MaxCommitAttempts(tries) } => {
                Some(format!("each of {tries} versions it tried was taken by another writer's commit first"))
            }
            DeltaTableError::VersionAlreadyExists(version) => {
                Some(format!("version {version} was taken by another writer's commit first"))
            }
            _ => None,
        };
        let message = self.at.explain(&error);
        match lost {
            Some(lost) => self.error(format!(
                "another writer committed to the Delta table at the same time: {lost}; the objects were not committed and the next run loads them"
            )),
            None if message.contains(FENCE_APP) || message.contains("oncurrent") => self.error(format!(
                "another writer committed to the Delta table at the same time and the commit could not be retried past it ({message}); the objects were not committed and the next run loads them"
            )),
            None => self.error(format!("the Delta commit failed: {message}")),
        }
    }

    fn table_properties(&self) -> Vec<(String, String)> {
        vec![
            ("sluice.mode".to_string(), format!("{:?}", self.spec.mode).to_ascii_lowercase()),
            ("sluice.key".to_string(), self.spec.key.join(",")),
            (PURPOSE_PROPERTY.to_string(), self.spec.delta.purpose.as_str().to_string()),
            (KIND_PROPERTY.to_string(), self.spec.delta.kind.as_str().to_string()),
        ]
    }

    /// Appends `rejects` to the rejects table, tagged with the group they belong to, and removes the
    /// rejects of groups that never committed or were rolled back.
    fn commit_rejects(&mut self, rejects: &[files::Reject], group: &str) -> Result<(), SinkError> {
        let live: HashSet<String> = self.markers()?.into_iter().map(|m| m.group).collect();
        let rejects_table = self.runtime.block_on(self.rejects_at.load()).map_err(|e| self.error(e))?;
        let orphans: Vec<Remove> = match &rejects_table {
            Some(table) => self
                .runtime
                .block_on(files::active(table))
                .map_err(|e| self.error(e))?
                .iter()
                .filter(|f| f.group.as_ref().is_some_and(|g| !live.contains(g)))
                .map(FileInfo::remove)
                .collect(),
            None => Vec::new(),
        };
        if rejects.is_empty() && orphans.is_empty() {
            return Ok(());
        }
        let at = self.rejects_at.clone();
        let added = self
            .runtime
            .block_on(files::write_rejects(&at, self.writer_properties(), rejects, group))
            .map_err(|e| self.error(e))?;
        let mut actions: Vec<Action> = added.into_iter().map(Action::Add).collect();
        actions.extend(orphans.into_iter().map(Action::Remove));
        let properties = CommitProperties::default().with_max_retries(COMMIT_RETRIES);
        let done = match &rejects_table {
            None => {
                let create = CreateBuilder::new()
                    .with_location(at.url.as_str())
                    .with_storage_options(self.runtime.block_on(at.options()).map_err(|e| self.error(e))?)
                    .with_columns(files::rejects_schema().fields().cloned())
                    .with_save_mode(SaveMode::ErrorIfExists)
                    .with_actions(actions)
                    .with_commit_properties(properties);
                self.runtime.block_on(create.into_future()).map(|_| ())
            }
            Some(table) => {
                let snapshot = table.snapshot().map_err(|e| self.error(e))?;
                let operation =
                    DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None };
                let commit = CommitBuilder::from(properties).with_actions(actions).build(
                    Some(snapshot),
                    table.log_store(),
                    operation,
                );
                self.runtime.block_on(commit.into_future()).map(|_| ())
            }
        };
        done.map_err(|e| self.error(format!("the rejected rows' Delta commit failed: {e}")))
    }
}

impl TableSink for DeltaTables {
    fn defers_commits(&self) -> bool {
        true
    }

    fn committed_objects(&mut self) -> Result<Vec<CommittedObject>, SinkError> {
        Ok(self.markers()?.into_iter().flat_map(|m| m.objects).collect())
    }

    fn remove(&mut self) -> Result<u64, SinkError> {
        self.group = None;
        let rows = match &self.table {
            Some(table) => self
                .runtime
                .block_on(files::active(table))
                .map_err(|e| self.error(e))?
                .iter()
                .map(|f| f.rows)
                .sum(),
            None => 0,
        };
        for at in [&self.at, &self.rejects_at] {
            self.runtime.block_on(at.remove_all()).map_err(|e| self.error(e))?;
        }
        self.table = None;
        Ok(rows)
    }

    fn rollback_last(&mut self) -> Result<Option<RolledBack>, SinkError> {
        self.commit_group()?;
        self.refresh()?;
        let markers = self.markers()?;
        let Some(run_id) = markers.iter().map(|m| m.run_id).max() else { return Ok(None) };
        let of_run: Vec<&MarkerTags> = markers.iter().filter(|m| m.run_id == run_id).collect();
        let before = of_run.iter().map(|m| m.before).min().unwrap_or(-1);
        let rows_removed = of_run.iter().flat_map(|m| &m.objects).map(|o| o.rows).sum();
        if before < 0 {
            // The run made the table: before it, there was none.
            self.remove()?;
            return Ok(Some(RolledBack { run_id, rows_removed }));
        }
        let table = self.table.take().expect("a table with markers exists");
        let restored =
            self.runtime.block_on(table.restore().with_version_to_restore(before as u64).into_future());
        match restored {
            Ok((table, _)) => self.table = Some(table),
            Err(e) => {
                self.refresh()?;
                return Err(self.error(format!(
                    "cannot restore the Delta table to version {before}, from before run {run_id}: {e}"
                )));
            }
        }
        // The run's rejected rows lost their marker with the restore: they go too.
        self.commit_rejects(&[], "")?;
        Ok(Some(RolledBack { run_id, rows_removed }))
    }

    fn newest_run(&mut self) -> Result<Option<i64>, SinkError> {
        Ok(self.markers()?.iter().map(|m| m.run_id).max())
    }

    fn finish_run(&mut self) -> Result<(), SinkError> {
        self.commit_group()
    }

    fn pairs(&mut self, key: &str, value: &str) -> Result<Vec<(String, String)>, SinkError> {
        self.commit_group()?;
        let Some(table) = &self.table else { return Ok(Vec::new()) };
        let at = self.at.clone();
        let mut active = self.runtime.block_on(files::active(table)).map_err(|e| self.error(e))?;
        active.retain(|f| f.marker.is_none());
        self.runtime.block_on(files::read_pairs(&at, &active, key, value)).map_err(|e| self.error(e))
    }

    fn fence(&mut self, token: i64) -> Result<(), SinkError> {
        if let Some(recorded) = self.recorded_fence()?
            && recorded > token
        {
            return Err(self.error(fenced_out(token, Some(recorded))));
        }
        self.fence = Some(token);
        // Recorded now: from here on an older run's commit conflicts, so what the runner reads of the
        // table next (its markers) is final as far as older runs go. The table records it in a version
        // of its own per run.
        self.record_fence()
    }

    fn optimize(&mut self) -> Result<Option<Optimized>, SinkError> {
        self.commit_group()?;
        self.refresh()?;
        let Some(table) = &self.table else { return Ok(Some(Optimized::default())) };
        let active = self.runtime.block_on(files::active(table)).map_err(|e| self.error(e))?;
        let file_size = self.spec.delta.file_size as i64;
        // Data files below half the target size are merged with the others of their partition, where
        // there are others; markers stay as they are (their tags).
        let partition = |f: &FileInfo| {
            let mut values: Vec<(String, Option<String>)> = f.partition_values.clone().into_iter().collect();
            values.sort();
            values
        };
        let small: Vec<&FileInfo> =
            active.iter().filter(|f| f.marker.is_none() && f.size < file_size / 2).collect();
        let mut per_partition = std::collections::HashMap::new();
        for file in &small {
            *per_partition.entry(partition(file)).or_insert(0) += 1;
        }
        let small: Vec<&FileInfo> = small.into_iter().filter(|f| per_partition[&partition(f)] > 1).collect();
        let mut optimized = Optimized::default();
        if !small.is_empty() {
            let at = self.at.clone();
            let columns = self.columns()?;
            let merged = self
                .runtime
                .block_on(files::merge_files(
                    &at,
                    self.writer_properties(),
                    &small,
                    &columns,
                    &self.spec.delta.partition_by,
                ))
                .map_err(|e| self.error(e))?;
            optimized.files_merged = small.len();
            optimized.files_written = merged.len();
            let mut actions: Vec<Action> = small
                .iter()
                .map(|f| Remove { data_change: false, ..f.remove() })
                .map(Action::Remove)
                .collect();
            actions.extend(merged.into_iter().map(|add| Action::Add(Add { data_change: false, ..add })));
            let table = self.table.as_ref().expect("checked");
            let snapshot = table.snapshot().map_err(|e| self.error(e))?;
            let mut properties = CommitProperties::default().with_max_retries(COMMIT_RETRIES);
            if let Some(token) = self.fence {
                properties = properties.with_application_transaction(Transaction::new(FENCE_APP, token));
            }
            let operation = DeltaOperation::Optimize { predicate: None, target_size: file_size };
            let commit = CommitBuilder::from(properties).with_actions(actions).build(
                Some(snapshot),
                table.log_store(),
                operation,
            );
            self.runtime.block_on(commit.into_future()).map_err(|e| self.commit_error(e))?;
            self.refresh()?;
        }
        // Versions a rollback within `versions` runs restores, and the one in force, keep their files.
        let markers = self.markers()?;
        let mut runs: Vec<(i64, i64)> = markers.iter().map(|m| (m.run_id, m.before)).collect();
        runs.sort_unstable_by(|a, b| b.cmp(a));
        runs.dedup_by_key(|(run, _)| *run);
        let table = self.table.take().expect("checked");
        let mut keep: Vec<u64> = runs
            .iter()
            .take(self.spec.versions as usize)
            .filter_map(|&(_, before)| u64::try_from(before).ok())
            .collect();
        keep.extend(table.version());
        let vacuum = table
            .vacuum()
            .with_mode(deltalake::operations::vacuum::VacuumMode::Full)
            .with_retention_period(chrono::Duration::zero())
            .with_enforce_retention_duration(false)
            .with_keep_versions(&keep);
        let (table, metrics) = self
            .runtime
            .block_on(vacuum.into_future())
            .map_err(|e| self.error(format!("the vacuum failed: {e}")))?;
        self.table = Some(table);
        optimized.files_deleted = metrics.files_deleted.len();
        Ok(Some(optimized))
    }

    fn begin_object<'s>(
        &'s mut self,
        object: &ObjectMeta,
        run_id: i64,
    ) -> Result<Box<dyn ObjectWrite + 's>, SinkError> {
        if let Some(group) = &self.group
            && (group.objects.len() >= self.spec.delta.commit_objects
                || group.started.elapsed() >= self.spec.delta.commit_interval
                || group.run_id != run_id)
        {
            self.commit_group()?;
        }
        // An object given up in this group and tried again: the group commits first, so that taking the
        // first try's rows out of its files cannot take the second's.
        if self.group.as_ref().is_some_and(|g| g.discarded.contains(&object.key)) {
            self.commit_group()?;
        }
        if self.group.is_none() {
            let columns = self.columns()?;
            self.group = Some(object::Group::new(run_id, columns));
        }
        let at = self.at.clone();
        let props = self.writer_properties();
        Ok(Box::new(DeltaObject::new(self, at, props, object.clone(), run_id)))
    }
}
