//! A Delta table's files as the sink reads and writes them: the active files with their markers, the
//! zero-row marker file of a commit, the rejected rows' files, and files rewritten by a merge or a column
//! widened to text (copy on write: the old file is removed, a new one added, in the same commit).

use super::convert::{self, TableColumn};
use super::location::{MARKERS, TableAt};
use crate::batch::RejectedRow;
use crate::object::ObjectMeta;
use crate::sink::{CommittedObject, StoredReject};
use crate::time::{from_millis, millis};
use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch as ArrowBatch, new_null_array,
};
use deltalake::arrow::compute::{cast, filter_record_batch};
use deltalake::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use deltalake::kernel::{Add, DataType, Remove, StructField, StructType};
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::writer::DeltaWriter;
use deltalake::{DeltaTable, ObjectStore, Path as StorePath};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The tag of a marker file: the objects its commit holds.
const MARKER_TAG: &str = "sluice.marker";
/// The tag of a rejects file: the group whose commit its rows belong to.
const GROUP_TAG: &str = "sluice.group";

/// What a commit's marker file says.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MarkerTags {
    /// The commit's group, which its rejected rows are tagged with.
    pub group: String,
    pub run_id: i64,
    /// The table's version before the run began (-1: the run made the table).
    pub before: i64,
    #[serde(with = "objects")]
    pub objects: Vec<CommittedObject>,
}

/// Committed objects in a marker's JSON.
mod objects {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Object {
        key: String,
        etag: String,
        size: u64,
        last_modified: i64,
        rows: u64,
        rejected: u64,
        run_id: i64,
    }

    pub fn serialize<S: serde::Serializer>(objects: &[CommittedObject], s: S) -> Result<S::Ok, S::Error> {
        let objects: Vec<Object> = objects
            .iter()
            .map(|o| Object {
                key: o.key.clone(),
                etag: o.etag.clone(),
                size: o.size,
                last_modified: millis(o.last_modified),
                rows: o.rows,
                rejected: o.rejected,
                run_id: o.run_id,
            })
            .collect();
        objects.serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<CommittedObject>, D::Error> {
        let objects = Vec::<Object>::deserialize(d)?;
        Ok(objects
            .into_iter()
            .map(|o| CommittedObject {
                key: o.key,
                etag: o.etag,
                size: o.size,
                last_modified: from_millis(o.last_modified),
                rows: o.rows,
                rejected: o.rejected,
                run_id: o.run_id,
            })
            .collect())
    }
}

/// An active file of a table.
pub struct FileInfo {
    pub path: String,
    pub size: i64,
    pub rows: u64,
    pub modified: i64,
    pub partition_values: HashMap<String, Option<String>>,
    /// A marker file's markers.
    pub marker: Option<MarkerTags>,
    /// A rejects file's group.
    pub group: Option<String>,
    /// The file's statistics (JSON: its row count, and each column's minimum, maximum and nulls).
    pub stats: Option<String>,
}

impl FileInfo {
    /// The action that takes the file out of the table.
    pub fn remove(&self) -> Remove {
        Remove {
            path: self.path.clone(),
            data_change: true,
            deletion_timestamp: Some(millis(std::time::SystemTime::now())),
            extended_file_metadata: Some(true),
            size: Some(self.size),
            partition_values: Some(self.partition_values.clone()),
            deletion_vector: None,
            tags: None,
            base_row_id: None,
            default_row_commit_version: None,
        }
    }
}

/// The table's active files, oldest first.
pub async fn active(table: &DeltaTable) -> Result<Vec<FileInfo>, String> {
    let snapshot = table.snapshot().map_err(|e| e.to_string())?;
    let mut files: Vec<FileInfo> = snapshot
        .log_data()
        .iter()
        .map(|view| {
            // The view's tags are read through its Add action, the one accessor delta-rs offers for them.
            #[allow(deprecated)]
            let tags = view.add_action().tags.unwrap_or_default();
            let marker = tags.get(MARKER_TAG).cloned().flatten();
            let marker = marker.map(|json| serde_json::from_str::<MarkerTags>(&json)).transpose();
            Ok(FileInfo {
                path: view.path().to_string(),
                size: view.size(),
                rows: view.num_records().unwrap_or(0) as u64,
                modified: view.modification_time(),
                partition_values: view.partition_values_map(),
                marker: marker.map_err(|e| format!("a marker of the table does not read: {e}"))?,
                group: tags.get(GROUP_TAG).cloned().flatten(),
                stats: view.stats(),
            })
        })
        .collect::<Result<_, String>>()?;
    files.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.path.cmp(&b.path)));
    Ok(files)
}

/// Writes the zero-row marker file of a commit: readers see no rows in it, and its tags hold the markers.
pub async fn write_marker(
    at: &TableAt,
    columns: &[TableColumn],
    partition_by: &[String],
    tags: &MarkerTags,
) -> Result<Add, String> {
    // A partitioned table's files hold no partition columns, and the marker's partition values are null.
    let kept: Vec<TableColumn> =
        columns.iter().filter(|c| !partition_by.contains(&c.name)).cloned().collect();
    let schema = convert::arrow_schema(&kept);
    let mut bytes = Vec::new();
    let writer = ArrowWriter::try_new(&mut bytes, schema, None).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    let path = format!("{MARKERS}/{}.parquet", uuid::Uuid::new_v4());
    let size = bytes.len() as i64;
    at.store().await?.put(&StorePath::from(path.as_str()), bytes.into()).await.map_err(|e| e.to_string())?;
    let json = serde_json::to_string(tags).map_err(|e| e.to_string())?;
    Ok(Add {
        path,
        partition_values: partition_by.iter().map(|name| (name.clone(), None)).collect(),
        size,
        modification_time: millis(std::time::SystemTime::now()),
        data_change: true,
        stats: Some(r#"{"numRecords":0}"#.to_string()),
        tags: Some(HashMap::from([(MARKER_TAG.to_string(), Some(json))])),
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    })
}

/// A rejected row as the rejects table keeps it.
pub struct Reject {
    object: String,
    etag: String,
    line: i64,
    reason: String,
    raw: String,
    run_id: i64,
}

impl Reject {
    pub fn of(row: &RejectedRow, object: &ObjectMeta, run_id: i64) -> Reject {
        Reject {
            object: object.key.clone(),
            etag: object.etag.clone(),
            line: row.line as i64,
            reason: row.reason.clone(),
            raw: row.raw.clone(),
            run_id,
        }
    }
}

const REJECT_COLUMNS: [(&str, bool); 6] = [
    ("object", false),
    ("etag", false),
    ("line", false),
    ("reason", false),
    ("raw", false),
    ("run_id", false),
];

fn reject_type(name: &str) -> (DataType, ArrowType) {
    match name {
        "line" | "run_id" => (DataType::LONG, ArrowType::Int64),
        _ => (DataType::STRING, ArrowType::Utf8),
    }
}

/// The rejects table's schema: object, etag, line, reason, raw, run_id.
pub fn rejects_schema() -> StructType {
    StructType::try_new(
        REJECT_COLUMNS.iter().map(|&(name, nullable)| StructField::new(name, reject_type(name).0, nullable)),
    )
    .expect("distinct names")
}

/// Writes `rejects` as files of the rejects table at `at`, tagged with `group`.
pub async fn write_rejects(
    at: &TableAt,
    props: WriterProperties,
    rejects: &[Reject],
    group: &str,
) -> Result<Vec<Add>, String> {
    if rejects.is_empty() {
        return Ok(Vec::new());
    }
    let schema: SchemaRef = Arc::new(Schema::new(
        REJECT_COLUMNS
            .iter()
            .map(|&(name, nullable)| Field::new(name, reject_type(name).1, nullable))
            .collect::<Vec<_>>(),
    ));
    use deltalake::arrow::array::{Int64Array, StringArray};
    let strings = |f: fn(&Reject) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rejects.iter().map(f)))
    };
    let arrays: Vec<ArrayRef> = vec![
        strings(|r| &r.object),
        strings(|r| &r.etag),
        Arc::new(Int64Array::from_iter_values(rejects.iter().map(|r| r.line))),
        strings(|r| &r.reason),
        strings(|r| &r.raw),
        Arc::new(Int64Array::from_iter_values(rejects.iter().map(|r| r.run_id))),
    ];
    let batch = ArrowBatch::try_new(schema.clone(), arrays).map_err(|e| e.to_string())?;
    let mut writer = at.writer(schema, &[]).await?.with_writer_properties(props);
    writer.write(batch).await.map_err(|e| e.to_string())?;
    let mut adds = writer.flush().await.map_err(|e| e.to_string())?;
    for add in &mut adds {
        add.tags = Some(HashMap::from([(GROUP_TAG.to_string(), Some(group.to_string()))]));
    }
    Ok(adds)
}

/// The rows of the rejects table `table` at `at` (of run `run` only, where given), oldest file first.
pub async fn read_rejects(
    at: &TableAt,
    table: &DeltaTable,
    run: Option<i64>,
) -> Result<Vec<StoredReject>, String> {
    use deltalake::arrow::datatypes::Int64Type;
    let store = at.store().await?;
    let mut rejects = Vec::new();
    for file in active(table).await? {
        // A commit's marker file holds no rows.
        for batch in read(store.as_ref(), &file.path, &file.partition_values)
            .await?
            .iter()
            .filter(|b| b.num_rows() > 0)
        {
            let missing = |name: &str| {
                format!("`{}` of the rejects table has no column `{name}` of its type", file.path)
            };
            let text = |name: &str| {
                batch.column_by_name(name).and_then(|c| c.as_string_opt::<i32>()).ok_or_else(|| missing(name))
            };
            let number = |name: &str| {
                batch
                    .column_by_name(name)
                    .and_then(|c| c.as_primitive_opt::<Int64Type>())
                    .ok_or_else(|| missing(name))
            };
            let (objects, etags, reasons, raws) =
                (text("object")?, text("etag")?, text("reason")?, text("raw")?);
            let (lines, run_ids) = (number("line")?, number("run_id")?);
            for row in 0..batch.num_rows() {
                let run_id = run_ids.value(row);
                if run.is_some_and(|run| run != run_id) {
                    continue;
                }
                rejects.push(StoredReject {
                    run_id,
                    object: objects.value(row).to_string(),
                    etag: etags.value(row).to_string(),
                    line: lines.value(row) as u64,
                    reason: reasons.value(row).to_string(),
                    raw: raws.value(row).to_string(),
                    stage: None,
                });
            }
        }
    }
    Ok(rejects)
}

/// What a commit changes in files written before it.
pub struct Rewrite<'a> {
    /// `merge`: the key columns, and the keys of the group's rows, which replace rows of the same key.
    pub keys: Option<(&'a [String], &'a HashSet<String>)>,
    /// The table's columns after the commit.
    pub columns: &'a [TableColumn],
    /// Columns widened to text by the commit.
    pub widened: &'a [String],
    /// The table's partition columns.
    pub partition_by: &'a [String],
}

/// Reads a Parquet file of the table, with its partition columns (which a partitioned table's files do not
/// hold) as text columns of the values its Add action records.
async fn read(
    store: &dyn ObjectStore,
    path: &str,
    partition_values: &HashMap<String, Option<String>>,
) -> Result<Vec<ArrowBatch>, String> {
    let bytes = store
        .get(&StorePath::from(path))
        .await
        .map_err(|e| format!("cannot read `{path}`: {e}"))?
        .bytes()
        .await
        .map_err(|e| format!("cannot read `{path}`: {e}"))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|builder| builder.build())
        .map_err(|e| format!("`{path}` is not a Parquet file Sluice can read: {e}"))?;
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| format!("cannot read `{path}`: {e}"))?;
    if partition_values.is_empty() {
        return Ok(batches);
    }
    batches.into_iter().map(|batch| with_partition_columns(batch, partition_values)).collect()
}

/// `batch` with a text column for each partition value, every row holding it.
fn with_partition_columns(
    batch: ArrowBatch,
    partition_values: &HashMap<String, Option<String>>,
) -> Result<ArrowBatch, String> {
    use deltalake::arrow::array::StringArray;
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
    let mut names: Vec<&String> = partition_values.keys().collect();
    names.sort();
    for name in names {
        if batch.column_by_name(name).is_some() {
            continue;
        }
        let value = partition_values[name].as_deref();
        fields.push(Arc::new(Field::new(name, ArrowType::Utf8, true)));
        arrays.push(Arc::new(StringArray::from(vec![value; batch.num_rows()])));
    }
    ArrowBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| e.to_string())
}

/// The key of each row, as text (the key columns' values joined).
pub fn row_keys(batch: &ArrowBatch, key: &[String]) -> Result<Vec<Option<String>>, String> {
    let columns: Vec<ArrayRef> = key
        .iter()
        .map(|name| {
            let column = batch
                .column_by_name(name)
                .ok_or_else(|| format!("the merge key column `{name}` is missing"))?;
            cast(column, &ArrowType::Utf8).map_err(|e| e.to_string())
        })
        .collect::<Result<_, String>>()?;
    Ok((0..batch.num_rows())
        .map(|row| {
            let mut parts = Vec::with_capacity(columns.len());
            for column in &columns {
                if column.is_null(row) {
                    return None;
                }
                parts.push(column.as_string::<i32>().value(row));
            }
            Some(parts.join("\u{1f}"))
        })
        .collect())
}

/// A batch as `schema` has it: columns it lacks are null, columns of another type are cast.
pub fn cast_batch(batch: &ArrowBatch, schema: &SchemaRef) -> Result<ArrowBatch, String> {
    let arrays: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
            Some(column) => cast(column, field.data_type()).map_err(|e| e.to_string()),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<_, _>>()?;
    ArrowBatch::try_new(schema.clone(), arrays).map_err(|e| e.to_string())
}

/// Whether a file written with `batch`'s schema holds a widened column at its old type.
fn needs_cast(batch: &ArrowBatch, widened: &[String]) -> bool {
    widened.iter().any(|name| {
        batch.schema().field_with_name(name).is_ok_and(|field| field.data_type() != &ArrowType::Utf8)
    })
}

/// A file of the table written again where it changes: without the rows `dropped` marks (a keep-mask per
/// batch, `None` where all stay), and with the widened columns cast to text. `None` where nothing changes.
async fn rewritten(
    store: &dyn ObjectStore,
    at: &TableAt,
    props: WriterProperties,
    schema: &SchemaRef,
    (path, partition_values): (&str, &HashMap<String, Option<String>>),
    rewrite: &Rewrite<'_>,
    dropped: &dyn Fn(&ArrowBatch) -> Result<Option<BooleanArray>, String>,
) -> Result<Option<Vec<Add>>, String> {
    let widened = rewrite.widened;
    let batches = read(store, path, partition_values).await?;
    let mut changed = false;
    let mut kept = Vec::with_capacity(batches.len());
    for batch in batches {
        changed |= needs_cast(&batch, widened);
        match dropped(&batch)? {
            Some(keep) if keep.false_count() > 0 => {
                changed = true;
                kept.push(filter_record_batch(&batch, &keep).map_err(|e| e.to_string())?);
            }
            _ => kept.push(batch),
        }
    }
    if !changed {
        return Ok(None);
    }
    write(at, props, schema, rewrite.partition_by, kept).await.map(Some)
}

/// Rewrites the committed `files` a commit changes (rows whose key the group has; columns widened to
/// text), as files of the table at `at`: the old ones to remove, the new ones to add.
pub async fn rewrite(
    at: &TableAt,
    props: WriterProperties,
    files: &[&FileInfo],
    rewrite: &Rewrite<'_>,
) -> Result<(Vec<Remove>, Vec<Add>), String> {
    if rewrite.keys.is_none() && rewrite.widened.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let store = at.store().await?;
    let schema = convert::arrow_schema(rewrite.columns);
    let replaced = |batch: &ArrowBatch| -> Result<Option<BooleanArray>, String> {
        let Some((key, keys)) = rewrite.keys else { return Ok(None) };
        let keep =
            row_keys(batch, key)?.into_iter().map(|k| Some(!k.as_ref().is_some_and(|k| keys.contains(k))));
        Ok(Some(keep.collect()))
    };
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    for file in files {
        let path = &file.path;
        let located = (path.as_str(), &file.partition_values);
        if let Some(new) =
            rewritten(store.as_ref(), at, props.clone(), &schema, located, rewrite, &replaced).await?
        {
            removed.push(file.remove());
            added.extend(new);
        }
    }
    Ok((removed, added))
}

/// Writes `batches` (cast to `schema`) as new files of the table at `at`.
pub async fn write(
    at: &TableAt,
    props: WriterProperties,
    schema: &SchemaRef,
    partition_by: &[String],
    batches: Vec<ArrowBatch>,
) -> Result<Vec<Add>, String> {
    let mut writer = at.writer(schema.clone(), partition_by).await?.with_writer_properties(props);
    let mut any = false;
    for batch in batches {
        if batch.num_rows() == 0 {
            continue;
        }
        any = true;
        writer.write(cast_batch(&batch, schema)?).await.map_err(|e| e.to_string())?;
    }
    if !any {
        return Ok(Vec::new());
    }
    writer.flush().await.map_err(|e| e.to_string())
}

/// The group's staged files without the rows of the `discarded` objects (given up after they wrote some)
/// and with the columns widened since they were written at their new type: each file that changes is
/// written again (as `rewrite.columns` has the table) and deleted, as no commit ever named it.
pub async fn rewrite_staged(
    at: &TableAt,
    props: WriterProperties,
    staged: Vec<Add>,
    discarded: &[String],
    rewrite: &Rewrite<'_>,
) -> Result<Vec<Add>, String> {
    if discarded.is_empty() && rewrite.widened.is_empty() {
        return Ok(staged);
    }
    let store = at.store().await?;
    let schema = convert::arrow_schema(rewrite.columns);
    let given_up = |batch: &ArrowBatch| -> Result<Option<BooleanArray>, String> {
        if discarded.is_empty() {
            return Ok(None);
        }
        let objects = batch
            .column_by_name("_sluice_object")
            .ok_or_else(|| "a staged file has no _sluice_object column".to_string())?
            .as_string::<i32>();
        Ok(Some(
            (0..batch.num_rows())
                .map(|row| Some(!discarded.iter().any(|d| d == objects.value(row))))
                .collect(),
        ))
    };
    let mut kept = Vec::with_capacity(staged.len());
    for add in staged {
        let file = (add.path.as_str(), &add.partition_values);
        match rewritten(store.as_ref(), at, props.clone(), &schema, file, rewrite, &given_up).await? {
            Some(new) => {
                kept.extend(new);
                let _ = store.delete(&StorePath::from(add.path.as_str())).await;
            }
            None => kept.push(add),
        }
    }
    Ok(kept)
}

/// The rows of `files`, oldest first, written again as files of the target size (`columns`: the table's
/// columns now, which older files may lack).
pub async fn merge_files(
    at: &TableAt,
    props: WriterProperties,
    files: &[&FileInfo],
    columns: &[TableColumn],
    partition_by: &[String],
) -> Result<Vec<Add>, String> {
    let store = at.store().await?;
    let schema = convert::arrow_schema(columns);
    let mut writer = at.writer(schema.clone(), partition_by).await?.with_writer_properties(props);
    // A file at a time, so that memory holds one small file's rows, not all of them.
    for file in files {
        for batch in read(store.as_ref(), &file.path, &file.partition_values).await? {
            writer.write(cast_batch(&batch, &schema)?).await.map_err(|e| e.to_string())?;
        }
    }
    writer.flush().await.map_err(|e| e.to_string())
}

/// `merge`: the group's rows with only the last of each key, and the keys.
pub fn dedupe(
    batches: Vec<ArrowBatch>,
    key: &[String],
) -> Result<(Vec<ArrowBatch>, HashSet<String>), String> {
    let keys: Vec<Vec<Option<String>>> =
        batches.iter().map(|b| row_keys(b, key)).collect::<Result<_, _>>()?;
    let mut last: HashMap<&str, (usize, usize)> = HashMap::new();
    for (index, batch_keys) in keys.iter().enumerate() {
        for (row, key) in batch_keys.iter().enumerate() {
            if let Some(key) = key {
                last.insert(key.as_str(), (index, row));
            }
        }
    }
    let mut kept = Vec::with_capacity(batches.len());
    for (index, batch) in batches.iter().enumerate() {
        let keep: BooleanArray = keys[index]
            .iter()
            .enumerate()
            .map(|(row, key)| Some(key.as_deref().is_some_and(|k| last.get(k) == Some(&(index, row)))))
            .collect();
        kept.push(filter_record_batch(batch, &keep).map_err(|e| e.to_string())?);
    }
    let all: HashSet<String> = last.keys().map(|k| k.to_string()).collect();
    Ok((kept, all))
}

/// Two columns of the table's rows as text pairs, oldest file first.
pub async fn read_pairs(
    at: &TableAt,
    files: &[FileInfo],
    key: &str,
    value: &str,
) -> Result<Vec<(String, String)>, String> {
    let store = at.store().await?;
    let mut pairs = Vec::new();
    for file in files {
        for batch in read(store.as_ref(), &file.path, &file.partition_values).await? {
            let (Some(keys), Some(values)) = (batch.column_by_name(key), batch.column_by_name(value)) else {
                continue;
            };
            let keys = cast(keys, &ArrowType::Utf8).map_err(|e| e.to_string())?;
            let values = cast(values, &ArrowType::Utf8).map_err(|e| e.to_string())?;
            let (keys, values) = (keys.as_string::<i32>(), values.as_string::<i32>());
            for row in 0..batch.num_rows() {
                if keys.is_valid(row) && values.is_valid(row) {
                    pairs.push((keys.value(row).to_string(), values.value(row).to_string()));
                }
            }
        }
    }
    Ok(pairs)
}
