//! Parquet files, read by ranges (contract 1.3.0, handing over typed columns): the footer first, then row group by row group, fetching
//! only the column chunks of the columns asked for.
//!
//! Options:
//! - `columns`: the top-level columns to read (`["id", "amount"]`); all of them where absent.
//! - `decimals`: `"text"` (the default: exact, `"12.30"`) or `"float"`.
//!
//! Values: integers and floats as numbers (an unsigned 64-bit value above the signed range as a JSON
//! number); strings as text; binary as base64 text; dates as `2026-11-05`; times as `13:45:00.250`;
//! timestamps as RFC 3339 (`2026-11-05T13:45:00.250Z` where the column is adjusted to UTC, with no offset
//! where it is local time); decimals by the `decimals` option; lists, structs and maps as JSON. Each record's
//! line is its 1-based number in the file.

mod convert;
mod input;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use convert::typed_column;
use input::Chunks;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::basic::Encoding;
use parquet::file::metadata::ColumnChunkMetaData;
use sluice_plugin_sdk::as_text::Decimals;
use sluice_plugin_sdk::{
    Emitter, FatalError, Options, RangeInput, RangedParser, export_ranged_parser, fatal,
};
use std::sync::Arc;

/// Rows decoded at a time: an Arrow batch, handed on as one batch of the contract.
const BATCH_ROWS: usize = 128 * 1024;
/// Rows read per call from the host: a bounded amount of work per call, which the host times.
const ROWS_PER_CALL: usize = BATCH_ROWS;

struct ParquetFile {
    batches: ParquetRecordBatchReader,
    decimals: Decimals,
    /// Records read so far: the next record's number is one more.
    rows_read: u64,
}

impl RangedParser for ParquetFile {
    fn create(mut options: Options, input: RangeInput) -> Result<Self, FatalError> {
        let columns = options.list("columns")?;
        let decimals = Decimals::from_options(&mut options)?;
        options.finish()?;

        // The file's own Arrow schema (which pyarrow stores) may ask for dictionary arrays and the like;
        // the Parquet schema alone gives plain arrays, which is all a batch holds.
        let reader_options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
        let chunks = Chunks::new(input);
        let not_readable =
            |e: parquet::errors::ParquetError| fatal(0, format!("not a readable Parquet file: {e}"));
        let mut metadata =
            ArrowReaderMetadata::load(&chunks, reader_options.clone()).map_err(not_readable)?;
        if let Some(schema) = dictionary_text(&metadata) {
            metadata =
                ArrowReaderMetadata::try_new(metadata.metadata().clone(), reader_options.with_schema(schema))
                    .map_err(not_readable)?;
        }
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(chunks.clone(), metadata);
        let mut builder = builder.with_batch_size(BATCH_ROWS);
        let mut roots_read = None;
        if let Some(columns) = columns {
            let roots = builder.parquet_schema().root_schema().get_fields();
            let mut indices = Vec::with_capacity(columns.len());
            for wanted in &columns {
                match roots.iter().position(|field| field.name() == wanted) {
                    Some(index) => indices.push(index),
                    None => {
                        let names: Vec<&str> = roots.iter().map(|field| field.name()).collect();
                        return Err(fatal(
                            0,
                            format!(
                                "option `columns` names `{wanted}`, which the file does not have (it has {})",
                                names.join(", ")
                            ),
                        ));
                    }
                }
            }
            let mask = ProjectionMask::roots(builder.parquet_schema(), indices.iter().copied());
            builder = builder.with_projection(mask);
            roots_read = Some(indices);
        }
        // The byte ranges of the column chunks to be read: those of the columns asked for, in every row
        // group.
        let schema = builder.parquet_schema();
        let leaves: Vec<usize> = (0..schema.num_columns())
            .filter(|leaf| {
                roots_read.as_ref().is_none_or(|roots| roots.contains(&schema.get_column_root_idx(*leaf)))
            })
            .collect();
        let ranges = builder
            .metadata()
            .row_groups()
            .iter()
            .flat_map(|group| leaves.iter().map(move |leaf| group.column(*leaf).byte_range()))
            .map(|(start, len)| (start, start + len))
            .collect();
        chunks.will_read(ranges, leaves.len());
        let batches = builder.build().map_err(|e| fatal(0, format!("cannot read the Parquet file: {e}")))?;
        Ok(ParquetFile { batches, decimals, rows_read: 0 })
    }

    fn next(&mut self, out: &mut Emitter) -> Result<bool, FatalError> {
        let mut rows = 0;
        while rows < ROWS_PER_CALL {
            let Some(batch) = self.batches.next() else { return Ok(false) };
            let batch =
                batch.map_err(|e| fatal(self.rows_read + 1, format!("cannot read the Parquet file: {e}")))?;
            rows += batch.num_rows();
            self.emit(&batch, out)?;
        }
        Ok(true)
    }
}

impl ParquetFile {
    fn emit(&mut self, batch: &RecordBatch, out: &mut Emitter) -> Result<(), FatalError> {
        let first = self.rows_read + 1;
        let rows = batch.num_rows();
        let schema = batch.schema();
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            let column = typed_column(field.name(), array.as_ref(), self.decimals)
                .map_err(|message| fatal(first, format!("column `{}`: {message}", field.name())))?;
            columns.push(column);
        }
        out.emit_typed(columns, rows, first);
        self.rows_read += rows as u64;
        Ok(())
    }
}

/// The file's schema with its top-level text columns that are dictionary-encoded throughout (every page of
/// every row group) read as Arrow dictionaries, where it has any: their values then cross to the host as
/// the dictionary and a key per row, never copied out one by one. `None` where it has none.
fn dictionary_text(metadata: &ArrowReaderMetadata) -> Option<SchemaRef> {
    let parquet = metadata.metadata();
    let descriptor = parquet.file_metadata().schema_descr();
    let roots = descriptor.root_schema().get_fields();
    let encoded_throughout = |leaf: usize| {
        let all = |chunk: &ColumnChunkMetaData| {
            chunk.dictionary_page_offset().is_some()
                && chunk.page_encoding_stats_mask().is_some_and(|mask| {
                    mask.is_only(Encoding::RLE_DICTIONARY) || mask.is_only(Encoding::PLAIN_DICTIONARY)
                })
        };
        parquet.num_row_groups() > 0 && parquet.row_groups().iter().all(|group| all(group.column(leaf)))
    };
    let mut changed = false;
    let fields: Vec<Field> = metadata
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(root, field)| {
            let leaf =
                (0..descriptor.num_columns()).find(|&leaf| descriptor.get_column_root_idx(leaf) == root);
            let plain_text = field.data_type() == &DataType::Utf8 && roots[root].is_primitive();
            match leaf {
                Some(leaf) if plain_text && encoded_throughout(leaf) => {
                    changed = true;
                    let dictionary =
                        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
                    field.as_ref().clone().with_data_type(dictionary)
                }
                _ => field.as_ref().clone(),
            }
        })
        .collect();
    changed.then(|| Arc::new(Schema::new_with_metadata(fields, metadata.schema().metadata().clone())))
}

export_ranged_parser!(ParquetFile);

#[cfg(test)]
mod tests {
    use super::ParquetFile;
    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use parquet::arrow::ArrowWriter;
    use serde_json::json;
    use sluice_plugin_sdk::testing::parse_ranged;
    use std::sync::Arc;

    /// A file of `rows` rows, `id` and `name`, in row groups of 1,000.
    fn file(rows: i64) -> Vec<u8> {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(1..=rows));
        let names: ArrayRef =
            Arc::new(StringArray::from_iter((1..=rows).map(|i| (i % 3 != 0).then(|| format!("n{i}")))));
        let batch = RecordBatch::try_from_iter([("id", ids), ("name", names)]).unwrap();
        let properties = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(1000))
            .build();
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        bytes
    }

    #[test]
    fn records_come_row_group_by_row_group_numbered_and_only_the_columns_asked_for() {
        let outcome = parse_ranged::<ParquetFile>(&[], file(2500)).unwrap();
        assert_eq!(outcome.records.len(), 2500);
        assert_eq!(outcome.records[2], json!({"id": 3, "name": null}));
        assert_eq!(outcome.lines[2499], 2500);
        let names = parse_ranged::<ParquetFile>(&[("columns", "[\"name\"]")], file(10)).unwrap();
        assert_eq!(names.records[0], json!({"name": "n1"}));
    }

    #[test]
    fn text_dictionary_encoded_throughout_is_read_as_a_dictionary_and_other_text_as_text() {
        use super::{ArrowReaderMetadata, ArrowReaderOptions, dictionary_text};
        use arrow_schema::DataType;
        let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
        let metadata =
            |bytes: Vec<u8>| ArrowReaderMetadata::load(&bytes::Bytes::from(bytes), options.clone()).unwrap();
        let hinted = dictionary_text(&metadata(file(2500))).expect("`name` is dictionary-encoded");
        let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        assert_eq!(hinted.field(1).data_type(), &dictionary);
        assert_eq!(hinted.field(0).data_type(), &DataType::Int64);

        // Written without dictionaries, the names stay plain text.
        let names: ArrayRef = Arc::new(StringArray::from_iter_values(["a", "b"]));
        let batch = RecordBatch::try_from_iter([("name", names)]).unwrap();
        let plain =
            parquet::file::properties::WriterProperties::builder().set_dictionary_enabled(false).build();
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(plain)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        assert!(dictionary_text(&metadata(bytes.clone())).is_none());
        let read = parse_ranged::<ParquetFile>(&[], bytes).unwrap();
        assert_eq!(read.records, [json!({"name": "a"}), json!({"name": "b"})]);
    }

    #[test]
    fn a_file_that_is_not_parquet_or_an_unknown_column_is_refused() {
        let error = parse_ranged::<ParquetFile>(&[], b"id,name\n1,Ann\n".to_vec()).unwrap_err();
        assert!(error.message.starts_with("not a readable Parquet file"), "{}", error.message);
        let error = parse_ranged::<ParquetFile>(&[("columns", "nope")], file(10)).unwrap_err();
        assert!(
            error.message.contains("names `nope`, which the file does not have (it has id, name)"),
            "{}",
            error.message
        );
    }
}
