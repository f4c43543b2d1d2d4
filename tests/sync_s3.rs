//! Sync from a real S3 protocol server (s3s, on 127.0.0.1) through the real aws-sdk-s3 client into SQLite:
//! lookback, incremental runs, prefix, pagination, changed ETags, late uploads, gzip, and what goes wrong.

mod support;

use rusqlite::Connection;
use sluice::config::{Config, DatabaseUrl};
use sluice::state::{ObjectStatus, RunStatus, StateStore};
use sluice::sync::{Quiet, RunReport, Runner};
use sluice_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use sluice_testkit::sts::Role;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

const DAY: Duration = Duration::from_secs(86_400);
const BUCKET: &str = "exports";

fn ago(duration: Duration) -> SystemTime {
    SystemTime::now() - duration
}

/// A configuration with one dataflow, `Orders`, reading `source` (TOML inline-table fields) as CSV.
fn config(dir: &Path, source: &str) -> Config {
    let text = format!(
        "[state]\nurl = \"sqlite://state.db\"\n\n[dataflows.Orders]\nsource = {{ {source} }}\nformat = {{ plugin = \"csv\" }}\nsink = {{ url = \"sqlite://tables.db\", table = \"orders\" }}\n"
    );
    let path = dir.join("connector.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap()
}

fn s3_source(server: &S3Server, bucket: &str, extra: &str) -> String {
    format!(
        "type = \"s3\", bucket = \"{bucket}\", endpoint = \"{}\", region = \"us-east-1\", access_key_id = \"{ACCESS_KEY}\", secret_access_key = \"{SECRET_KEY}\"{extra}",
        server.endpoint()
    )
}

fn run(config: &Config) -> RunReport {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    Runner::new(config, support::host(), runtime.handle().clone()).run("Orders", &Quiet).unwrap()
}

/// The loaded rows as (object, id), in load order.
fn rows(dir: &Path) -> Vec<(String, String)> {
    let connection = Connection::open(dir.join("tables.db")).unwrap();
    let mut statement = connection.prepare("SELECT _sluice_object, id FROM orders ORDER BY rowid").unwrap();
    statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).unwrap().map(Result::unwrap).collect()
}

fn csv(ids: std::ops::Range<u32>) -> Vec<u8> {
    let mut text = String::from("id,amount\n");
    for id in ids {
        text.push_str(&format!("{id},{}.50\n", id * 3));
    }
    text.into_bytes()
}

fn server() -> S3Server {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    server
}

#[test]
fn the_first_run_takes_90_days_and_later_runs_only_what_is_new() {
    let (s3, dir) = (server(), tempfile::tempdir().unwrap());
    s3.put(BUCKET, "orders/old.csv", &csv(0..3), ago(DAY * 100));
    s3.put(BUCKET, "orders/a.csv", &csv(10..13), ago(DAY * 80));
    s3.put(BUCKET, "orders/b.csv", &csv(20..22), ago(DAY));
    let config = config(dir.path(), &s3_source(&s3, BUCKET, ""));

    let first = run(&config);
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    assert_eq!((first.counts.objects, first.counts.rows), (2, 5));
    assert_eq!(
        rows(dir.path()).iter().map(|(o, _)| o.as_str()).collect::<Vec<_>>(),
        ["orders/a.csv", "orders/a.csv", "orders/a.csv", "orders/b.csv", "orders/b.csv"]
    );

    let gets = s3.gets();
    let second = run(&config);
    assert_eq!((second.status, second.counts.objects), (RunStatus::Succeeded, 0));
    assert_eq!(s3.gets(), gets, "nothing already imported is downloaded again");

    s3.put(BUCKET, "orders/c.csv", &csv(30..31), SystemTime::now());
    let third = run(&config);
    assert_eq!((third.counts.objects, third.counts.rows), (1, 1));
    assert_eq!(rows(dir.path()).len(), 6);

    let mut state = StateStore::open(&DatabaseUrl::Sqlite(dir.path().join("state.db"))).unwrap();
    let runs = state.runs("Orders").unwrap();
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| r.status == RunStatus::Succeeded && r.ended_at.is_some()));
    assert_eq!(runs[0].counts.rows, 1);
    let ledger = state.ledger("Orders").unwrap();
    assert_eq!(ledger.len(), 3);
    assert!(ledger.iter().all(|e| e.status == ObjectStatus::Loaded));
}

#[test]
fn a_prefix_reads_only_that_folder() {
    let (s3, dir) = (server(), tempfile::tempdir().unwrap());
    s3.put(BUCKET, "orders/a.csv", &csv(0..2), ago(DAY));
    s3.put(BUCKET, "ordersarchive/x.csv", &csv(5..6), ago(DAY));
    s3.put(BUCKET, "refunds/r.csv", &csv(7..9), ago(DAY));
    let config = config(dir.path(), &s3_source(&s3, BUCKET, ", prefix = \"orders/\""));
    let report = run(&config);
    assert_eq!((report.counts.objects, report.counts.rows), (1, 2));
    assert!(rows(dir.path()).iter().all(|(object, _)| object == "orders/a.csv"));
}

#[test]
fn more_than_a_thousand_objects_are_listed_page_by_page_and_all_imported() {
    let (s3, dir) = (server(), tempfile::tempdir().unwrap());
    for n in 0..2_500u32 {
        s3.put(BUCKET, &format!("orders/{n:05}.csv"), &csv(n..n + 1), ago(DAY));
    }
    let config = config(dir.path(), &s3_source(&s3, BUCKET, ""));
    let report = run(&config);
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!((report.counts.objects, report.counts.rows), (2_500, 2_500));
    assert!(s3.list_pages() >= 3, "ListObjectsV2 was paginated ({} pages)", s3.list_pages());
    let ids: std::collections::BTreeSet<String> = rows(dir.path()).into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 2_500);
}

#[test]
fn a_bucket_of_100_000_objects_is_listed_in_full() {
    let (s3, dir) = (server(), tempfile::tempdir().unwrap());
    for n in 0..100_000u32 {
        // Outside the lookback: listed, planned, not imported.
        s3.put(BUCKET, &format!("archive/{n:06}.csv"), b"id\n1\n", ago(DAY * 200));
    }
    s3.put(BUCKET, "archive/zz-new.csv", &csv(0..1), ago(DAY));
    let config = config(dir.path(), &s3_source(&s3, BUCKET, ""));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let runner = Runner::new(&config, support::host(), runtime.handle().clone());
    let preview = runner.preview("Orders", 1).unwrap();
    assert_eq!(preview.plan.listed, 100_001);
    assert_eq!(preview.plan.to_import().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["archive/zz-new.csv"]);
    assert!(s3.list_pages() >= 101);
}

#[test]
fn an_object_whose_etag_changed_is_imported_again_as_a_new_version() {
    let (s3, dir) = (server(), tempfile::tempdir().unwrap());
    s3.put(BUCKET, "orders/a.csv", &csv(0..2), ago(DAY));
    let config = config(dir.path(), &s3_source(&s3, BUCKET, ""));
    assert_eq!(run(&config).counts.rows, 2);
    s3.put(BUCKET, "orders/a.csv", &csv(0..3), SystemTime::now());
    let report = run(&config);
    assert_eq!((report.counts.objects, report.counts.rows), (1, 3));
    let mut state = StateStore::open(&DatabaseUrl::Sqlite(dir.path().join("state.db"))).unwrap();
    let versions = state.ledger("Orders").unwrap();
    assert_eq!(versions.len(), 2, "both versions are in the ledger");
    assert_ne!(versions[0].etag, versions[1].etag);
    assert_eq!(run(&config).counts.objects, 0);
}

#[test]
fn an_upload_that_appears_with_a_last_modified_before_the_cursor_is_imported_once() {
    let (s3, dir) = (server(), tempfile::tempdir().unwrap());
    s3.put(BUCKET, "orders/small.csv", &csv(0..1), ago(Duration::from_secs(600)));
    let config = config(dir.path(), &s3_source(&s3, BUCKET, ""));
    assert_eq!(run(&config).counts.objects, 1);
    // A large upload that began an hour ago finishes only now: its LastModified is before the cursor.
    s3.put(BUCKET, "orders/large.csv", &csv(100..150), ago(Duration::from_secs(3600)));
    let report = run(&config);
    assert_eq!((report.counts.objects, report.counts.rows), (1, 50));
    assert_eq!(run(&config).counts.objects, 0);
    assert_eq!(rows(dir.path()).len(), 51);
}

#[test]
fn gzip_and_zstd_objects_are_decompressed_by_extension_or_magic_bytes() {
    let (s3, dir) = (server(), tempfile::tempdir().unwrap());
    let gzip = |bytes: &[u8]| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    };
    s3.put(BUCKET, "orders/a.csv.gz", &gzip(&csv(0..100)), ago(DAY));
    s3.put(BUCKET, "orders/b", &gzip(&csv(100..200)), ago(DAY));
    s3.put(BUCKET, "orders/c.csv.zst", &zstd::encode_all(&csv(200..300)[..], 3).unwrap(), ago(DAY));
    let config = config(dir.path(), &s3_source(&s3, BUCKET, ""));
    let report = run(&config);
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.counts.rows, 300);
    let ids: std::collections::BTreeSet<u32> =
        rows(dir.path()).iter().map(|(_, id)| id.parse().unwrap()).collect();
    assert_eq!(ids, (0..300).collect());
}

#[test]
fn a_malformed_file_among_good_ones_fails_alone_and_the_run_ends_partial() {
    let (s3, dir) = (server(), tempfile::tempdir().unwrap());
    s3.put(BUCKET, "orders/1-good.csv", &csv(0..5), ago(DAY * 3));
    s3.put(BUCKET, "orders/2-bad.csv", b"id,am\xffount\n1,2\n", ago(DAY * 2));
    s3.put(BUCKET, "orders/3-good.csv", &csv(5..10), ago(DAY));
    s3.put(BUCKET, "orders/4-truncated.csv.gz", &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1], ago(DAY));
    let config = config(dir.path(), &s3_source(&s3, BUCKET, ""));
    let report = run(&config);
    assert_eq!(report.status, RunStatus::Partial);
    assert_eq!((report.counts.objects, report.counts.failed_objects, report.counts.rows), (4, 2, 10));
    let error = report.error.unwrap();
    for part in ["dataflow `Orders`", "orders/2-bad.csv", "line 1", "`csv`", "orders/4-truncated.csv.gz"] {
        assert!(error.contains(part), "`{part}` missing from: {error}");
    }
    assert_eq!(rows(dir.path()).len(), 10, "nothing of the bad object is in the table");

    let mut state = StateStore::open(&DatabaseUrl::Sqlite(dir.path().join("state.db"))).unwrap();
    let history = state.runs("Orders").unwrap();
    assert_eq!(history[0].status, RunStatus::Partial);
    assert!(history[0].error.as_deref().unwrap().contains("orders/2-bad.csv"));
    let bad = state.ledger("Orders").unwrap().into_iter().find(|e| e.key == "orders/2-bad.csv").unwrap();
    assert_eq!(bad.status, ObjectStatus::Failed);
    assert!(bad.error.unwrap().contains("line 1"));

    // Unchanged, the bad file is not retried; replaced, it is.
    assert_eq!(run(&config).counts.objects, 0);
    s3.put(BUCKET, "orders/2-bad.csv", &csv(50..52), SystemTime::now());
    let fixed = run(&config);
    assert_eq!((fixed.status, fixed.counts.rows), (RunStatus::Succeeded, 2));
}

fn failed_run(config: &Config) -> String {
    let report = run(config);
    assert_eq!(report.status, RunStatus::Failed);
    report.error.unwrap()
}

#[test]
fn a_missing_bucket_fails_the_run_with_its_name() {
    let (s3, dir) = (server(), tempfile::tempdir().unwrap());
    let error = failed_run(&config(dir.path(), &s3_source(&s3, "no-such-bucket", "")));
    assert!(error.contains("bucket `no-such-bucket` does not exist"), "{error}");
    assert!(error.contains("dataflow `Orders`"), "{error}");
}

#[test]
fn wrong_credentials_fail_the_run_and_are_not_shown() {
    let (s3, dir) = (server(), tempfile::tempdir().unwrap());
    let source = format!(
        "type = \"s3\", bucket = \"{BUCKET}\", endpoint = \"{}\", access_key_id = \"{ACCESS_KEY}\", secret_access_key = \"not-the-secret\"",
        s3.endpoint()
    );
    let error = failed_run(&config(dir.path(), &source));
    assert!(error.contains("access denied"), "{error}");
    assert!(!error.contains("not-the-secret"), "{error}");
    let mut state = StateStore::open(&DatabaseUrl::Sqlite(dir.path().join("state.db"))).unwrap();
    assert!(state.runs("Orders").unwrap()[0].error.as_deref().unwrap().contains("access denied"));
}

#[test]
fn an_unreachable_endpoint_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let source = format!(
        "type = \"s3\", bucket = \"{BUCKET}\", endpoint = \"http://127.0.0.1:{port}\", access_key_id = \"a\", secret_access_key = \"b\""
    );
    let error = failed_run(&config(dir.path(), &source));
    assert!(error.contains(&format!("cannot reach http://127.0.0.1:{port}")), "{error}");
    assert!(error.contains("Connection refused"), "{error}");
}

fn role() -> Role {
    Role { arn: "arn:aws:iam::210987654321:role/sluice-import".into(), external_id: "ext-7d1f".into() }
}

#[test]
fn a_bucket_of_another_account_is_read_through_its_role_and_external_id() {
    let (s3, dir) = (S3Server::start_with_role(role()), tempfile::tempdir().unwrap());
    s3.create_bucket(BUCKET);
    s3.put(BUCKET, "orders/a.csv", &csv(0..4), ago(DAY));

    // The caller's own key is refused by the bucket...
    let own_key = failed_run(&config(dir.path(), &s3_source(&s3, BUCKET, "")));
    assert!(own_key.contains("access denied"), "{own_key}");

    // ...and the role, assumed with its external ID, reads it.
    let dir = tempfile::tempdir().unwrap();
    let with_role = format!(", role_arn = \"{}\", external_id = \"{}\"", role().arn, role().external_id);
    let report = run(&config(dir.path(), &s3_source(&s3, BUCKET, &with_role)));
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.counts.rows, 4);
    assert!(s3.assume_role_calls() >= 1);
}

#[test]
fn a_wrong_external_id_fails_the_run_without_showing_it() {
    let (s3, dir) = (S3Server::start_with_role(role()), tempfile::tempdir().unwrap());
    s3.create_bucket(BUCKET);
    let wrong = format!(", role_arn = \"{}\", external_id = \"guessed-id\"", role().arn);
    let error = failed_run(&config(dir.path(), &s3_source(&s3, BUCKET, &wrong)));
    assert!(error.contains("dataflow `Orders`") && error.contains("listing s3://exports/"), "{error}");
    assert!(
        error.contains(
            "cannot get credentials (assuming role `arn:aws:iam::210987654321:role/sluice-import`)"
        ),
        "{error}"
    );
    assert!(error.contains("the external ID does not match"), "{error}");
    assert!(!error.contains("guessed-id"), "{error}");
}

#[test]
fn a_download_cut_or_stalled_part_way_is_resumed_from_where_it_broke_within_the_run() {
    use sluice_testkit::s3::BodyFault;
    let server = server();
    let bytes = csv(0..40_000);
    server.put(BUCKET, "big.csv", &bytes, ago(DAY));
    server.fail_next_bodies(1, BodyFault::CutAfter(100_000));
    server.fail_next_bodies(1, BodyFault::StallAfter(50_000, Duration::from_secs(30)));
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &s3_source(&server, BUCKET, ", stall_timeout = \"1s\""));
    let started = std::time::Instant::now();
    let report = run(&config);
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert!(started.elapsed() < Duration::from_secs(15), "the stall cost its timeout, not 30 s");
    let loaded = rows(dir.path());
    assert_eq!(loaded.len(), 40_000, "every row once");
    assert_eq!(loaded.last().unwrap().1, "39999");
    // The whole object, then from the byte the cut left off at, then from where the stall began.
    let ranges = server.ranges();
    assert_eq!(ranges.len(), 3, "{ranges:?}");
    assert_eq!(ranges[0], None);
    assert!(ranges[1].as_deref().is_some_and(|r| r.contains("first: 100000")), "{ranges:?}");
    assert!(ranges[2].as_deref().is_some_and(|r| r.contains("first: 150000")), "{ranges:?}");
}

#[test]
fn a_download_that_keeps_breaking_leaves_the_object_pending_naming_bytes_timeout_and_cause() {
    use sluice_testkit::s3::BodyFault;
    let server = server();
    let bytes = csv(0..40_000);
    server.put(BUCKET, "big.csv", &bytes, ago(DAY));
    server.fail_next_bodies(1, BodyFault::CutAfter(100_000));
    server.fail_next_bodies(2, BodyFault::CutAfter(0));
    let dir = tempfile::tempdir().unwrap();
    let retrying = config(dir.path(), &s3_source(&server, BUCKET, ", read_retries = 2"));
    let report = run(&retrying);
    assert_eq!(report.status, RunStatus::Failed);
    let object = &report.objects[0];
    assert_eq!(object.status, ObjectStatus::Pending, "a network failure is worth the next run");
    let error = object.error.clone().unwrap_or_default();
    assert!(
        error.contains(&format!(
            "the download of `big.csv` broke at byte 100000 of {}, 3 times in a row (2 resumptions)",
            bytes.len()
        )),
        "{error}"
    );
    assert!(
        error.contains("the test server cut the body") || error.contains("connection"),
        "the cause: {error}"
    );

    server.fail_next_bodies(1, BodyFault::StallAfter(10, Duration::from_secs(30)));
    let dir = tempfile::tempdir().unwrap();
    let config =
        config(dir.path(), &s3_source(&server, BUCKET, ", read_retries = 0, stall_timeout = \"1s\""));
    let report = run(&config);
    let error = report.objects[0].error.clone().unwrap_or_default();
    assert!(error.contains("no byte came for 1s (the source's stall_timeout)"), "{error}");
}
