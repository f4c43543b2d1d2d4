//! Parquet files, read by ranges (contract 1.2.0): the footer first, then row group by row group, fetching
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
use convert::{Decimals, write_column};
use input::Chunks;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use sluice_plugin_sdk::{
    ColumnValues, Emitter, FatalError, Options, RangeInput, RangedParser, export_ranged_parser, fatal,
};

/// Rows decoded at a time: an Arrow batch, handed on as one batch of the contract.
const BATCH_ROWS: usize = 8 * 1024;
/// Rows read per call from the host: a bounded amount of work per call, which the host times.
const ROWS_PER_CALL: usize = 8 * BATCH_ROWS;

struct ParquetFile {
    batches: ParquetRecordBatchReader,
    decimals: Decimals,
    /// Records read so far: the next record's number is one more.
    rows_read: u64,
}

impl RangedParser for ParquetFile {
    fn create(mut options: Options, input: RangeInput) -> Result<Self, FatalError> {
        let columns = options.list("columns")?;
        let decimals = match options.get("decimals").as_deref() {
            None | Some("text") => Decimals::Text,
            Some("float") => Decimals::Float,
            Some(other) => {
                return Err(fatal(
                    0,
                    format!("option `decimals` is `{other}`; expected \"text\" or \"float\""),
                ));
            }
        };
        options.finish()?;

        // The file's own Arrow schema (which pyarrow stores) may ask for dictionary arrays and the like;
        // the Parquet schema alone gives plain arrays, which is all a batch holds.
        let reader_options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
        let chunks = Chunks::new(input);
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(chunks.clone(), reader_options)
            .map_err(|e| fatal(0, format!("not a readable Parquet file: {e}")))?;
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
        chunks.will_read(ranges);
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
            let mut column = ColumnValues::new(field.name(), rows);
            write_column(array.as_ref(), self.decimals, &mut column)
                .map_err(|message| fatal(first, format!("column `{}`: {message}", field.name())))?;
            columns.push(column);
        }
        out.emit_columns(columns, (first..first + rows as u64).collect());
        self.rows_read += rows as u64;
        Ok(())
    }
}

export_ranged_parser!(ParquetFile);
