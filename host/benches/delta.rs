//! End-to-end sync into a Delta table on local disk: CSV objects from the in-process S3 server through the
//! WASM csv plugin into Delta Lake (Parquet, zstd), next to two floors measured in the same run on the same
//! objects and rows:
//!
//! - parsing: every object's bytes through the csv plugin alone, the batches dropped;
//! - Parquet: the same rows (Sluice's three lineage columns and the file's seven, as text) written by
//!   arrow-rs's `ArrowWriter` with zstd to one file, the Arrow batches made before the clock runs.
//!
//! ```sh
//! cargo bench --bench delta                           # 1 GB: 100 objects of 10 MB (~12 million rows)
//! cargo bench --bench delta -- --mb 1000 --objects 1  # one 1 GB object: the peak-memory goal
//! cargo bench --bench delta -- --mb 100 --objects 10  # quicker
//! ```
//!
//! Each time is the median of `--rounds` (default 3) rounds, each round a sync and both floors.

#[allow(dead_code)] // the daemon the worker and notification benches start, which this one does not
mod support;

use deltalake::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use sluice::parse::parse_stream;
use sluice::plugin::{HostSettings, Limits, PluginHost, PluginSource, PluginSpec, bundled_format};
use sluice_testkit::orders::{csv_object, order};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::Orders;

/// Rows per Arrow batch in the Parquet floor: about what the plugin hands over per call.
const BATCH_ROWS: usize = 8192;

fn main() {
    let orders = Orders::from_args();
    let rounds = support::number_flag("--rounds", 3).max(1);
    let (objects, per_object, bytes, rows) = (orders.objects, orders.per_object, orders.bytes, orders.rows);
    let host = PluginHost::new(HostSettings::default()).expect("plugin host");
    // The sync and the floors by turns, so that a machine that slows down for a while slows all three.
    let (mut syncs, mut parses, mut parquets) = (Vec::new(), Vec::new(), Vec::new());
    let (mut peak, mut lake_bytes) = (0f64, 0);
    for _ in 0..rounds {
        let dir = tempfile::tempdir().expect("a folder for the lake");
        let (sync, round_peak) = orders.sync(dir.path(), "{ url = \"delta+file://lake\" }");
        syncs.push(sync);
        peak = peak.max(round_peak);
        lake_bytes = folder_bytes(&dir.path().join("lake"));
        parses.push(parse_only(&host, objects, per_object));
        parquets.push(parquet_only(dir.path(), objects, per_object));
    }
    let (sync, parse, parquet) = (median(syncs), median(parses), median(parquets));
    println!("median of {rounds} rounds:");

    let floor = parse.max(parquet);
    println!("{:<44} {:>9} {:>12} {:>9} {:>7}", "", "seconds", "rows/s", "MB/s", "ratio");
    let line = |name: &str, time: Duration| {
        let seconds = time.as_secs_f64();
        println!(
            "{name:<44} {seconds:>9.2} {:>12.0} {:>9.1} {:>7.2}",
            rows as f64 / seconds,
            bytes as f64 / 1e6 / seconds,
            floor.as_secs_f64() / seconds
        );
    };
    line("csv plugin parsing alone (WASM)", parse);
    line("arrow-rs Parquet writing alone (zstd)", parquet);
    line("sluice sync (S3 -> csv plugin -> Delta)", sync);
    println!(
        "sync speed / slower floor's: {:.2} (goal: at least 0.7); {:.1} MB/s of CSV (goal: over 150)",
        floor.as_secs_f64() / sync.as_secs_f64(),
        bytes as f64 / 1e6 / sync.as_secs_f64()
    );
    println!("the Delta table: {:.1} MB on disk", lake_bytes as f64 / 1e6);
    println!(
        "peak resident memory during the syncs: {peak:.1} MB, the highest of the rounds (goal: under 300 MB)"
    );
}

/// Every object's bytes through the csv plugin, the batches counted and dropped.
fn parse_only(host: &PluginHost, objects: usize, per_object: usize) -> Duration {
    let spec = PluginSpec {
        name: "csv".to_string(),
        source: PluginSource::Bundled(bundled_format("csv").expect("the bundled csv plugin")),
        limits: Limits::default(),
    };
    let plugin = host.load_format(&spec).expect("the csv plugin loads");
    let mut elapsed = Duration::ZERO;
    let mut first_id = 0u64;
    for object in 0..objects {
        let (body, count) = csv_object(first_id, per_object);
        first_id += count;
        let started = Instant::now();
        let mut parsed_rows = 0u64;
        parse_stream(&plugin, None, &format!("orders/{object:04}.csv"), &[], body.as_bytes(), |parsed| {
            parsed_rows += parsed.batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
            Ok(())
        })
        .expect("the objects parse");
        elapsed += started.elapsed();
        assert_eq!(parsed_rows, count);
    }
    elapsed
}

/// The rows the sync loaded, as Arrow batches of the table's ten columns, written to one Parquet file.
fn parquet_only(dir: &std::path::Path, objects: usize, per_object: usize) -> Duration {
    let schema = Arc::new(Schema::new(
        [
            ("_sluice_object", DataType::Utf8),
            ("_sluice_line", DataType::Int64),
            ("_sluice_run", DataType::Int64),
        ]
        .into_iter()
        .chain(
            ["id", "customer", "email", "amount", "currency", "created", "note"].map(|c| (c, DataType::Utf8)),
        )
        .map(|(name, kind)| Field::new(name, kind, true))
        .collect::<Vec<_>>(),
    ));
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("a valid level")))
        .build();
    let file = std::fs::File::create(dir.join("floor.parquet")).expect("the floor's file");
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).expect("the floor's writer");
    let mut elapsed = Duration::ZERO;
    let mut first_id = 0u64;
    for object in 0..objects {
        let key = format!("orders/{object:04}.csv");
        let count = csv_object(first_id, per_object).1;
        let rows: Vec<[String; 7]> = (first_id..first_id + count).map(order).collect();
        let batches: Vec<RecordBatch> = rows
            .chunks(BATCH_ROWS)
            .enumerate()
            .map(|(chunk, rows)| {
                let first_line = (chunk * BATCH_ROWS) as i64 + 2;
                let mut columns: Vec<ArrayRef> = vec![
                    Arc::new(StringArray::from_iter_values(rows.iter().map(|_| key.as_str()))),
                    Arc::new(Int64Array::from_iter_values((0..rows.len() as i64).map(|i| first_line + i))),
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|_| 1))),
                ];
                for column in 0..7 {
                    columns.push(Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|r| r[column].as_str()),
                    )));
                }
                RecordBatch::try_new(schema.clone(), columns).expect("a batch")
            })
            .collect();
        first_id += count;
        let started = Instant::now();
        for batch in &batches {
            writer.write(batch).expect("the batch is written");
        }
        elapsed += started.elapsed();
    }
    let started = Instant::now();
    writer.close().expect("the file closes");
    elapsed + started.elapsed()
}

/// The middle one of `times`.
fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn folder_bytes(folder: &std::path::Path) -> u64 {
    std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => folder_bytes(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
