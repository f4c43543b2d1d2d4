//! What handing batches over as Apache Arrow costs (`RecordBatch::into_arrow`), against
//! the baseline an embedding program would otherwise write: reading every value and appending it to
//! arrow-rs builders. Both make the same arrays from the same batches (16,384 rows each, as the SDK's
//! plugins cut them: an integer id, a text name, a float amount and a text note that is null one row in
//! ten), measured in one run.
//!
//! ```sh
//! cargo bench --bench arrow                    # 4 million rows, median of 5 rounds
//! cargo bench --bench arrow -- --rows 1000000 --rounds 3
//! ```

#[path = "support/args.rs"]
mod args;

use args::number_flag;
use sluice::batch::arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder};
use sluice::batch::arrow_array::{ArrayRef, RecordBatch as ArrowBatch};
use sluice::batch::arrow_schema::{DataType, Field, Schema, SchemaRef};
use sluice::batch::{BatchBuilder, RecordBatch, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH_ROWS: usize = 16_384;

fn main() {
    let rows: usize = number_flag("--rows", 4_000_000);
    let rounds: usize = number_flag("--rounds", 5);

    let batches = batches(rows);
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("note", DataType::Utf8, true),
    ]));
    let (mut converted, mut built) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        // The batches are cloned outside the timing: `into_arrow` consumes them.
        let copies = batches.clone();
        let started = Instant::now();
        let arrow: Vec<ArrowBatch> = copies.into_iter().map(|b| b.into_arrow().expect("converts")).collect();
        converted.push(started.elapsed());
        let started = Instant::now();
        let baseline: Vec<ArrowBatch> = batches.iter().map(|batch| with_builders(batch, &schema)).collect();
        built.push(started.elapsed());
        assert_eq!(arrow, baseline, "both make the same arrays");
    }
    let (converted, built) = (median(converted), median(built));
    let per_million = |d: Duration| d.as_secs_f64() * 1e6 / rows as f64 * 1000.0;
    println!("{rows} rows in {} batches, median of {rounds}", batches.len());
    println!("  arrow-rs builders (baseline): {:>8.2} ms per million rows", per_million(built));
    println!("  into_arrow:                   {:>8.2} ms per million rows", per_million(converted));
    println!("  into_arrow speed / baseline:  {:>8.2}", built.as_secs_f64() / converted.as_secs_f64());
}

fn batches(rows: usize) -> Vec<RecordBatch> {
    let names = ["Ann", "Bob", "Chidi Okafor", "Dana", "Émile Zola", "Farah"];
    (0..rows.div_ceil(BATCH_ROWS))
        .map(|b| {
            let mut builder = BatchBuilder::new(&["id", "name", "amount", "note"]);
            for row in b * BATCH_ROWS..((b + 1) * BATCH_ROWS).min(rows) {
                let note = if row % 10 == 0 { Value::Null } else { Value::Text("paid by card, thank you") };
                let values = [
                    Value::Integer(row as i64),
                    Value::Text(names[row % 6]),
                    Value::Float(row as f64 * 0.25),
                    note,
                ];
                builder.push_row(row as u64 + 2, &values);
            }
            builder.finish()
        })
        .collect()
}

/// The same arrays, value by value through arrow-rs builders.
fn with_builders(batch: &RecordBatch, schema: &SchemaRef) -> ArrowBatch {
    let rows = batch.num_rows();
    let (mut ids, mut amounts) = (Int64Builder::with_capacity(rows), Float64Builder::with_capacity(rows));
    let (mut names, mut notes) = (StringBuilder::new(), StringBuilder::new());
    for row in 0..rows {
        let value = |column| batch.value(column, row).expect("valid text");
        match value(0) {
            Value::Integer(i) => ids.append_value(i),
            _ => ids.append_null(),
        }
        match value(1) {
            Value::Text(t) => names.append_value(t),
            _ => names.append_null(),
        }
        match value(2) {
            Value::Float(f) => amounts.append_value(f),
            _ => amounts.append_null(),
        }
        match value(3) {
            Value::Text(t) => notes.append_value(t),
            _ => notes.append_null(),
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        Arc::new(names.finish()),
        Arc::new(amounts.finish()),
        Arc::new(notes.finish()),
    ];
    ArrowBatch::try_new(schema.clone(), columns).expect("the columns fit the schema")
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
