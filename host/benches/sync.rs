//! End-to-end sync speed: CSV objects from an in-process S3 server (s3s, over loopback HTTP, through the
//! real aws-sdk-s3 client) through the WASM csv plugin into an SQLite table, next to two floors measured in
//! the same run on the same objects and rows:
//!
//! - download: GetObject of every object, read to its end and dropped (the I/O floor);
//! - SQLite: the same rows, with the same columns, inserted through one prepared statement in one
//!   transaction (SQLite's own bulk insert), the values generated in memory.
//!
//! ```sh
//! cargo bench --bench sync                          # 1 GB: 100 objects of 10 MB (~12 million rows)
//! cargo bench --bench sync -- --mb 100 --objects 20 # smaller and quicker
//! ```
//!
//! Peak memory is the process's resident high-water mark (VmHWM), reset before the sync, so it covers the
//! sync alone (the in-process S3 server streams from files and holds no object in memory).

#[allow(dead_code)] // the daemon the worker and notification benches start, which this one does not
mod support;

use rusqlite::Connection;
use sluice_testkit::orders::{csv_object, order};
use sluice_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use std::time::{Duration, Instant};
use support::{BUCKET, Orders};

fn main() {
    let orders = Orders::from_args();
    let (objects, per_object, bytes, rows) = (orders.objects, orders.per_object, orders.bytes, orders.rows);
    let dir = tempfile::tempdir().expect("a folder for the databases");
    let (sync, peak) = orders.sync(dir.path(), "");

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let download = download_all(&orders.s3, &runtime, objects);
    let insert = sqlite_bulk_insert(dir.path(), objects, per_object);

    let floor = download.max(insert);
    println!("{:<40} {:>9} {:>12} {:>9} {:>7}", "", "seconds", "rows/s", "MB/s", "ratio");
    let line = |name: &str, time: Duration| {
        let seconds = time.as_secs_f64();
        println!(
            "{name:<40} {seconds:>9.2} {:>12.0} {:>9.1} {:>7.2}",
            rows as f64 / seconds,
            bytes as f64 / 1e6 / seconds,
            seconds / floor.as_secs_f64()
        );
    };
    line("download only (GetObject, I/O floor)", download);
    line("SQLite bulk insert (prepared, 1 tx)", insert);
    line("sluice sync (S3 -> csv plugin -> SQLite)", sync);
    println!("sync time / slower floor: {:.2} (goal: at most 1.5)", sync.as_secs_f64() / floor.as_secs_f64());
    println!("peak resident memory during the sync: {peak:.1} MB (goal: under 300 MB)");
}

/// Row `id` of the generated orders, as its seven values.
fn download_all(s3: &S3Server, runtime: &tokio::runtime::Runtime, objects: usize) -> Duration {
    runtime.block_on(async {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(s3.endpoint())
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "bench",
            ))
            .build();
        let client = aws_sdk_s3::Client::from_conf(config);
        let started = Instant::now();
        for object in 0..objects {
            let output = client
                .get_object()
                .bucket(BUCKET)
                .key(format!("orders/{object:04}.csv"))
                .send()
                .await
                .expect("GetObject");
            let mut body = output.body;
            while let Some(chunk) = body.try_next().await.expect("the body reads") {
                std::hint::black_box(chunk);
            }
        }
        started.elapsed()
    })
}

/// The rows the sync loaded, inserted as SQLite's bulk insert would: one prepared statement, one
/// transaction, the same columns (Sluice's three lineage columns and the seven of the file, as text).
fn sqlite_bulk_insert(dir: &std::path::Path, objects: usize, per_object: usize) -> Duration {
    let mut connection = Connection::open(dir.join("floor.db")).expect("the floor database");
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;
             CREATE TABLE orders (_sluice_object TEXT NOT NULL, _sluice_line INTEGER, _sluice_run INTEGER NOT NULL,
             id TEXT, customer TEXT, email TEXT, amount TEXT, currency TEXT, created TEXT, note TEXT);",
        )
        .expect("the floor table");
    // The values are made before the clock starts, one object at a time, so only inserting is timed.
    let mut elapsed = Duration::ZERO;
    let mut first_id = 0u64;
    let transaction = connection.transaction().expect("a transaction");
    {
        let mut insert = transaction
            .prepare("INSERT INTO orders VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")
            .expect("the insert");
        for object in 0..objects {
            let key = format!("orders/{object:04}.csv");
            let count = csv_object(first_id, per_object).1;
            let rows: Vec<[String; 7]> = (first_id..first_id + count).map(order).collect();
            first_id += count;
            let started = Instant::now();
            for (line, row) in rows.iter().enumerate() {
                insert
                    .execute(rusqlite::params![
                        key,
                        line as i64 + 2,
                        1,
                        row[0],
                        row[1],
                        row[2],
                        row[3],
                        row[4],
                        row[5],
                        row[6]
                    ])
                    .expect("a row");
            }
            elapsed += started.elapsed();
        }
    }
    let started = Instant::now();
    transaction.commit().expect("the commit");
    elapsed + started.elapsed()
}
