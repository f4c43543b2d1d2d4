//! Parquet through the bundled `parquet` plugin (contract 1.2.0, read by ranges) against arrow-rs reading
//! the same file natively to Arrow, in the same run; the bytes a run fetches from S3 when it asks for 2 of
//! a file's 20 columns; and the peak memory of reading a large file.
//!
//! ```sh
//! cargo bench --bench parquet                         # 2 million orders, median of 5 rounds
//! cargo bench --bench parquet -- --rows 500000 --rounds 3
//! cargo bench --bench parquet -- --big-mb 1000        # also: peak memory reading a 1 GB file
//! ```

#[allow(dead_code)]
mod support;

use deltalake::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::record_batch::RecordBatch as ArrowBatch;
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use sluice::config::Config;
use sluice::parse::parse_ranged;
use sluice::plugin::{HostSettings, PluginHost, PluginSource, PluginSpec, bundled_format};
use sluice::source::FileRanges;
use sluice::state::RunStatus;
use sluice::sync::{Quiet, Runner};
use sluice_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use support::{median, number_flag, peak_memory_mb, reset_peak_memory};

/// Rows per row group, as Spark and pyarrow write them by default (about a million).
const ROW_GROUP: usize = 1 << 20;

fn main() {
    sluice::allocator::limit_arenas();
    let rows = number_flag("--rows", 2_000_000);
    let rounds = number_flag("--rounds", 5);
    let big_mb = number_flag("--big-mb", 0);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let host = PluginHost::new(HostSettings::default()).expect("plugin host");
    let spec = PluginSpec {
        name: "parquet".into(),
        source: PluginSource::Bundled(bundled_format("parquet").expect("bundled")),
        limits: Default::default(),
    };
    let plugin = host.load_format(&spec).expect("the parquet plugin loads");

    let orders = dir.path().join("orders.parquet");
    write(&orders, rows, orders_batch);
    let size = std::fs::metadata(&orders).unwrap().len();
    println!("orders.parquet: {rows} rows, 6 columns, snappy, {:.1} MB", size as f64 / 1e6);
    let (mut native, mut plugged) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        let read = read_natively(&orders);
        native.push(started.elapsed());
        assert_eq!(read, rows);

        let started = Instant::now();
        let input = FileRanges::new(std::fs::File::open(&orders).unwrap()).unwrap();
        let mut read = 0;
        let summary = parse_ranged(&plugin, None, "orders.parquet", &[], Box::new(input), |parsed| {
            read += parsed.batches.iter().map(|b| b.num_rows()).sum::<usize>();
            Ok(())
        })
        .expect("the plugin reads the file");
        plugged.push(started.elapsed());
        assert_eq!((read, summary.rows as usize), (rows, rows));
    }
    let (native, plugged) = (median(native), median(plugged));
    let rate = |d: Duration| rows as f64 / d.as_secs_f64() / 1e6;
    println!(
        "  arrow-rs to Arrow (baseline): {:>7.3} s  {:>6.2} M rows/s",
        native.as_secs_f64(),
        rate(native)
    );
    println!(
        "  parquet plugin to batches:    {:>7.3} s  {:>6.2} M rows/s",
        plugged.as_secs_f64(),
        rate(plugged)
    );
    println!("  plugin speed / baseline:      {:>7.2}", native.as_secs_f64() / plugged.as_secs_f64());

    fetched_for_two_columns(&host, dir.path(), rows);

    if big_mb > 0 {
        peak_memory(&plugin, dir.path(), big_mb);
    }
}

/// Writes `rows` rows made by `batch` (for rows `from..to`) to `path`, a row group at a time.
fn write(path: &Path, rows: usize, batch: fn(usize, usize) -> ArrowBatch) {
    let first = batch(0, 1);
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, first.schema(), Some(properties)).unwrap();
    let mut from = 0;
    while from < rows {
        let to = (from + 64 * 1024).min(rows);
        writer.write(&batch(from, to)).unwrap();
        from = to;
    }
    writer.close().unwrap();
}

fn orders_batch(from: usize, to: usize) -> ArrowBatch {
    let ids = from as i64..to as i64;
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from_iter_values(ids.clone()))),
        (
            "customer",
            Arc::new(StringArray::from_iter_values(ids.clone().map(|i| format!("customer {}", i % 9973)))),
        ),
        (
            "amount",
            Arc::new(Float64Array::from_iter_values(ids.clone().map(|i| (i % 100_000) as f64 / 100.0))),
        ),
        ("paid", Arc::new(BooleanArray::from_iter(ids.clone().map(|i| Some(i % 3 != 0))))),
        (
            "created",
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    ids.clone().map(|i| 1_767_225_600_000_000 + i * 1_000_003),
                )
                .with_timezone("UTC"),
            ),
        ),
        ("note", Arc::new(StringArray::from_iter(ids.map(|i| (i % 10 == 0).then(|| format!("note {i}")))))),
    ];
    ArrowBatch::try_from_iter(columns).unwrap()
}

fn wide_batch(from: usize, to: usize) -> ArrowBatch {
    let columns = (0..20).map(|c| {
        let values = (from as i64..to as i64).map(|i| i.wrapping_mul(c + 1) ^ (i >> 3));
        (format!("c{c}"), Arc::new(Int64Array::from_iter_values(values)) as ArrayRef)
    });
    ArrowBatch::try_from_iter(columns).unwrap()
}

/// Reads every row of `path` natively, as arrow-rs does to Arrow record batches (8,192 rows each, as the
/// plugin reads them).
fn read_natively(path: &Path) -> usize {
    let file = std::fs::File::open(path).unwrap();
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(file).unwrap().with_batch_size(8192).build().unwrap();
    reader.map(|batch| batch.unwrap().num_rows()).sum()
}

/// A run from the in-process S3 server that asks for 2 of a file's 20 columns: the bytes fetched, against
/// those columns' share of the file (their column chunks' sizes, from the footer).
fn fetched_for_two_columns(host: &PluginHost, dir: &Path, rows: usize) {
    let wide = dir.join("wide.parquet");
    write(&wide, rows, wide_batch);
    let bytes = std::fs::read(&wide).unwrap();
    let metadata = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&wide).unwrap()).unwrap();
    let metadata = metadata.metadata();
    let asked: i64 = metadata
        .row_groups()
        .iter()
        .flat_map(|group| group.columns())
        .filter(|column| ["c3", "c17"].contains(&column.column_path().string().as_str()))
        .map(|column| column.compressed_size())
        .sum();

    let s3 = S3Server::start();
    s3.create_bucket("bench");
    s3.put("bench", "wide/part-0.parquet", &bytes, SystemTime::now());
    let config_path = dir.join("connector.toml");
    std::fs::write(
        &config_path,
        format!(
            "[state]\nurl = \"sqlite://{0}/state.db\"\n\n[dataflows.Wide]\nsource = {{ type = \"s3\", bucket = \"bench\", endpoint = \"{1}\", access_key_id = \"{ACCESS_KEY}\", secret_access_key = \"{SECRET_KEY}\" }}\nformat = {{ plugin = \"parquet\", options = {{ columns = [\"c3\", \"c17\"] }} }}\nsink = {{ url = \"sqlite://{0}/tables.db\", table = \"wide\" }}\n",
            dir.display(),
            s3.endpoint()
        ),
    )
    .unwrap();
    let config = Config::load(&config_path).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    let report = Runner::new(&config, host, runtime.handle().clone()).run("Wide", &Quiet).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.counts.rows as usize, rows);
    let fetched = s3.bytes_served();
    println!(
        "wide.parquet from S3, columns c3 and c17 of 20: {:.1} MB file, those columns {:.1} MB ({:.1}%)",
        bytes.len() as f64 / 1e6,
        asked as f64 / 1e6,
        asked as f64 * 100.0 / bytes.len() as f64
    );
    println!(
        "  fetched {:.1} MB ({:.1}% of the file) in {} ranged GETs: {:.3}x those columns; run {:.2} s",
        fetched as f64 / 1e6,
        fetched as f64 * 100.0 / bytes.len() as f64,
        s3.gets(),
        fetched as f64 / asked as f64,
        elapsed.as_secs_f64()
    );
}

/// The peak resident memory of reading a file of about `megabytes` MB through the plugin.
fn peak_memory(plugin: &sluice::plugin::FormatPlugin, dir: &Path, megabytes: usize) {
    let big = dir.join("big.parquet");
    // About 16 bytes a row, snappy-compressed, for the orders above.
    let rows = megabytes * 1_000_000 / 16;
    write(&big, rows, orders_batch);
    let size = std::fs::metadata(&big).unwrap().len();
    reset_peak_memory();
    let before = peak_memory_mb();
    let started = Instant::now();
    let input = FileRanges::new(std::fs::File::open(&big).unwrap()).unwrap();
    let mut read = 0;
    parse_ranged(plugin, None, "big.parquet", &[], Box::new(input), |parsed| {
        read += parsed.batches.iter().map(|b| b.num_rows()).sum::<usize>();
        Ok(())
    })
    .expect("the plugin reads the big file");
    let elapsed = started.elapsed();
    assert_eq!(read, rows);
    println!(
        "big.parquet: {:.0} MB, {rows} rows, read in {:.1} s; peak resident memory {:.0} MB ({before:.0} MB before the read)",
        size as f64 / 1e6,
        elapsed.as_secs_f64(),
        peak_memory_mb()
    );

    // The whole `sluice parse` process on the same file, records to /dev/null: its own peak.
    let started = Instant::now();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["parse", "--format", "parquet"])
        .arg(&big)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("running sluice parse");
    assert!(status.success());
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    println!(
        "  sluice parse --format parquet big.parquet > /dev/null: {:.1} s, peak resident memory {:.0} MB",
        started.elapsed().as_secs_f64(),
        usage.ru_maxrss as f64 / 1024.0
    );
}
