//! ZIP archives as containers: each member is an object of its own (`exports.zip!/orders/2026-11.csv`),
//! listed in preview and the ledger, loaded and rejected under its own name, from a local folder and from
//! S3 by ranged reads. The archive is written by Python's zipfile (`tests/support/formats.py zip`), which
//! also reads each member's rows back for the comparison; a damaged member or archive fails alone.

mod support;

use rusqlite::Connection;
use serde_json::Value;
use sluice::config::Config;
use sluice::state::{ObjectStatus, RunStatus, StateStore};
use sluice::sync::{Quiet, RunReport, Runner};
use sluice_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

const NOVEMBER: &str = "exports.zip!/orders/2026-11.csv";
const OCTOBER: &str = "exports.zip!/orders/2026-10.csv";
const DECEMBER: &str = "exports.zip!/orders/2026-12.csv.gz";
/// A member of another format than the dataflow's, read by the format its extension names.
const LATE: &str = "exports.zip!/late/extra.jsonl";

/// The archive zipfile wrote, and what it says each member holds: written once for all the tests, which
/// run side by side (each writing it again over the others' reads garbled it).
fn written() -> (PathBuf, Value) {
    static WRITTEN: OnceLock<(PathBuf, Value)> = OnceLock::new();
    WRITTEN
        .get_or_init(|| {
            let folder = support::root().join("target/formats-written/zip");
            std::fs::create_dir_all(&folder).unwrap();
            let output = Command::new(support::root().join("tests/support/python.sh"))
                .args(["formats.py", "zip"])
                .arg(&folder)
                .output()
                .expect("running tests/support/python.sh");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "formats.py zip failed:\n{stderr}");
            let described: Value = serde_json::from_slice(&output.stdout).expect("formats.py prints JSON");
            (folder.join("exports.zip"), described["exports.zip"].clone())
        })
        .clone()
}

/// A configuration with one dataflow, `Orders`, reading `source` as CSV into SQLite.
fn config(dir: &Path, source: &str) -> Config {
    let text = format!(
        "[state]\nurl = \"sqlite://state.db\"\n\n[dataflows.Orders]\nsource = {{ {source} }}\nformat = {{ plugin = \"csv\" }}\nsink = {{ url = \"sqlite://tables.db\", table = \"orders\" }}\n"
    );
    std::fs::write(dir.join("connector.toml"), text).unwrap();
    Config::load(&dir.join("connector.toml")).unwrap()
}

fn runner_run(config: &Config) -> RunReport {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    Runner::new(config, support::host(), runtime.handle().clone()).run("Orders", &Quiet).unwrap()
}

/// Rows loaded per object.
fn rows_per_object(dir: &Path) -> BTreeMap<String, i64> {
    let connection = Connection::open(dir.join("tables.db")).unwrap();
    let mut statement = connection.prepare("SELECT _sluice_object, count(*) FROM orders GROUP BY 1").unwrap();
    statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).unwrap().map(Result::unwrap).collect()
}

/// Each member's rows, by id: (month, amount, note), as loaded.
fn loaded_rows(dir: &Path, object: &str) -> BTreeMap<String, (String, String, String)> {
    let connection = Connection::open(dir.join("tables.db")).unwrap();
    let mut statement =
        connection.prepare("SELECT id, month, amount, note FROM orders WHERE _sluice_object = ?1").unwrap();
    statement
        .query_map([object], |row| {
            Ok((
                row.get(0)?,
                (row.get(1)?, row.get::<_, String>(2)?, row.get::<_, Option<String>>(3)?.unwrap_or_default()),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// What zipfile read back of `member`, in the same shape.
fn written_rows(described: &Value, member: &str) -> BTreeMap<String, (String, String, String)> {
    described[member]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let text = |name: &str| row[name].as_str().unwrap().to_string();
            (text("id"), (text("month"), text("amount"), text("note")))
        })
        .collect()
}

#[test]
fn each_member_is_an_object_previewed_loaded_and_rejected_under_its_own_name() {
    let (archive, described) = written();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(&archive, data.join("exports.zip")).unwrap();
    std::fs::write(data.join("loose.csv"), "id,month,amount,note\nl-1,2026-09,1.00,\n").unwrap();
    let config = config(dir.path(), "type = \"local\", path = \"data\"");

    // The preview lists the members, not the archive (directories and macOS's metadata left out), and
    // reads the first of them.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let preview =
        Runner::new(&config, support::host(), runtime.handle().clone()).preview("Orders", 2).unwrap();
    let mut planned: Vec<&str> = preview.plan.to_import().map(|object| object.key.as_str()).collect();
    planned.sort();
    assert_eq!(planned, [LATE, OCTOBER, NOVEMBER, DECEMBER, "loose.csv"]);
    let sample = preview.sample.expect("a sample");
    // The first member, JSON Lines in an archive of CSV: read as the format its extension names.
    assert_eq!((sample.key.as_str(), &sample.error), (LATE, &None));
    assert_eq!(sample.records.len(), 2);
    assert!(sample.records[0].contains(r#""id":"late-0""#), "{}", sample.records[0]);
    let sizes: BTreeMap<&str, u64> =
        preview.plan.objects.iter().map(|p| (p.object.key.as_str(), p.object.size)).collect();
    assert_eq!(
        sizes[NOVEMBER],
        described["orders/2026-11.csv"]["size"].as_u64().unwrap(),
        "a member's own size"
    );

    let report = runner_run(&config);
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!((report.counts.objects, report.counts.rows), (5, 40 + 300 + 5 + 3 + 1));
    let mut expected = BTreeMap::new();
    for (member, key) in [
        ("orders/2026-10.csv", OCTOBER),
        ("orders/2026-11.csv", NOVEMBER),
        ("orders/2026-12.csv.gz", DECEMBER),
        ("late/extra.jsonl", LATE),
    ] {
        let want = written_rows(&described, member);
        assert_eq!(loaded_rows(dir.path(), key), want, "{key}, value by value");
        expected.insert(key.to_string(), want.len() as i64);
    }
    expected.insert("loose.csv".to_string(), 1);
    assert_eq!(rows_per_object(dir.path()), expected);

    // The ledger holds each member; the row one field too long is rejected under its member and line.
    let mut state = StateStore::open(&config.state_database()).unwrap();
    let ledger = state.ledger("Orders").unwrap();
    for key in [OCTOBER, NOVEMBER, DECEMBER, LATE] {
        let entry = ledger.iter().find(|e| e.key == key).unwrap_or_else(|| panic!("{key} in the ledger"));
        assert_eq!(entry.status, ObjectStatus::Loaded, "{key}");
    }
    let tables = Connection::open(dir.path().join("tables.db")).unwrap();
    let rejected: (String, i64, String) = tables
        .query_row("SELECT object, line, raw FROM _sluice_rejects", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((rejected.0.as_str(), rejected.1), (NOVEMBER, 302));
    assert!(rejected.2.starts_with("bad,row,with,five,fields"), "{}", rejected.2);

    // Nothing new: the next run takes nothing.
    assert_eq!(runner_run(&config).counts.objects, 0);
}

#[test]
fn from_s3_members_are_read_by_ranges_of_the_archive() {
    let (archive, described) = written();
    let bytes = std::fs::read(&archive).unwrap();
    let s3 = S3Server::start();
    s3.create_bucket("drop");
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        "type = \"s3\", bucket = \"drop\", endpoint = \"{}\", region = \"us-east-1\", access_key_id = \"{ACCESS_KEY}\", secret_access_key = \"{SECRET_KEY}\"",
        s3.endpoint()
    );
    // An archive older than the first run's 90 days is listed, not opened: not even its directory is read.
    s3.put("drop", "old/exports.zip", &bytes, SystemTime::now() - Duration::from_secs(200 * 86_400));
    let report = runner_run(&config(dir.path(), &source));
    assert_eq!((report.counts.objects, s3.ranges().len()), (0, 0), "{:?}", report.error);

    s3.put("drop", "in/exports.zip", &bytes, SystemTime::now() - Duration::from_secs(3600));
    let report = runner_run(&config(dir.path(), &source));
    assert_eq!((report.counts.objects, report.counts.rows), (4, 40 + 300 + 5 + 3), "{:?}", report.error);
    assert_eq!(
        loaded_rows(dir.path(), "in/exports.zip!/orders/2026-11.csv"),
        written_rows(&described, "orders/2026-11.csv")
    );
    // Every GET is ranged: the directory, then each member's bytes, never the archive whole in one.
    let ranged = s3.ranges();
    assert!(!ranged.is_empty() && ranged.iter().all(Option::is_some), "{ranged:?}");
}

#[test]
fn a_damaged_member_and_a_file_that_is_no_archive_fail_alone() {
    let (archive, _) = written();
    let mut bytes = std::fs::read(&archive).unwrap();
    // A digit of the stored October member changed: its CRC-32 no longer matches.
    let at = bytes.windows(10).position(|w| w == b"2026-10-5,").expect("October's row 5, stored as it is");
    bytes[at + 8] = b'7';
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("exports.zip"), &bytes).unwrap();
    std::fs::write(data.join("garbage.zip"), b"id,month\nthis is no archive\n").unwrap();
    let config = config(dir.path(), "type = \"local\", path = \"data\"");

    let report = runner_run(&config);
    assert_eq!(report.status, RunStatus::Partial, "{:?}", report.error);
    let mut state = StateStore::open(&config.state_database()).unwrap();
    let ledger = state.ledger("Orders").unwrap();
    let status = |key: &str| {
        let entry = ledger.iter().find(|e| e.key == key).unwrap_or_else(|| panic!("{key} in the ledger"));
        (entry.status, entry.error.clone().unwrap_or_default())
    };
    let (october, error) = status(OCTOBER);
    assert_eq!(october, ObjectStatus::Failed, "{error}");
    assert!(error.contains("member `orders/2026-10.csv` is damaged"), "{error}");
    let (garbage, error) = status("garbage.zip");
    assert_eq!(garbage, ObjectStatus::Failed, "{error}");
    assert!(error.contains("not a readable ZIP archive"), "{error}");
    assert_eq!(status(NOVEMBER).0, ObjectStatus::Loaded);
    assert_eq!(status(DECEMBER).0, ObjectStatus::Loaded);
    let loaded = rows_per_object(dir.path());
    assert_eq!(
        (loaded.get(NOVEMBER), loaded.get(DECEMBER), loaded.get(OCTOBER)),
        (Some(&300), Some(&5), None)
    );
}

/// `sluice parse FILE` in `dir`: (exit status, records as JSON, stderr).
fn parse(dir: &Path, file: &str) -> (Option<i32>, Vec<Value>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir)
        .env("SLUICE_CACHE_DIR", support::root().join("target").join("test-plugin-cache"))
        .args(["parse", "--format", "csv", file])
        .output()
        .unwrap();
    let records = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a record as JSON"))
        .collect();
    (output.status.code(), records, String::from_utf8_lossy(&output.stderr).into_owned())
}

/// The ids of `records`, in order.
fn ids(records: &[Value]) -> Vec<String> {
    records.iter().map(|record| record["id"].as_str().unwrap_or_default().to_string()).collect()
}

#[test]
fn sluice_parse_reads_every_member_as_a_run_does_or_the_one_named_and_a_damaged_member_fails_alone() {
    let (archive, described) = written();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&archive, dir.path().join("exports.zip")).unwrap();

    // Every member, each by the format a run reads it with, rejects named by member and line.
    let (status, records, stderr) = parse(dir.path(), "exports.zip");
    assert_eq!(status, Some(0), "{stderr}");
    let mut expected = Vec::new();
    for member in ["orders/2026-10.csv", "orders/2026-11.csv", "orders/2026-12.csv.gz", "late/extra.jsonl"] {
        expected.extend(written_rows(&described, member).into_keys());
        assert!(stderr.contains(&format!("exports.zip!/{member}: ")), "a summary per member: {stderr}");
    }
    let mut read = ids(&records);
    read.sort();
    expected.sort();
    assert_eq!(read, expected);
    assert!(stderr.contains(&format!("rejected: {NOVEMBER} line 302: ")), "{stderr}");
    assert!(stderr.contains("via plugin `jsonl`") && !stderr.contains("__MACOSX"), "{stderr}");

    // One member, named as a run names it: the gzip member, decompressed.
    let (status, records, stderr) = parse(dir.path(), DECEMBER);
    assert_eq!(status, Some(0), "{stderr}");
    let december: Vec<String> = written_rows(&described, "orders/2026-12.csv.gz").into_keys().collect();
    let mut read = ids(&records);
    read.sort();
    assert_eq!(read, december);
    let (status, _, stderr) = parse(dir.path(), "exports.zip!/orders/2027-01.csv");
    assert_eq!(status, Some(1));
    assert!(stderr.contains("the archive has no member `orders/2027-01.csv`"), "{stderr}");

    // A member damaged: it fails, naming itself, and the others are still read.
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = bytes.windows(10).position(|w| w == b"2026-10-5,").expect("October's row 5, stored as it is");
    bytes[at + 8] = b'7';
    std::fs::write(dir.path().join("exports.zip"), &bytes).unwrap();
    let (status, records, stderr) = parse(dir.path(), "exports.zip");
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("member `orders/2026-10.csv` is damaged"), "{stderr}");
    assert!(stderr.contains("1 of the 4 members of exports.zip could not be read"), "{stderr}");
    let read = ids(&records);
    for id in written_rows(&described, "orders/2026-11.csv").into_keys() {
        assert!(read.contains(&id), "November's {id} still read");
    }
}

#[test]
fn members_that_failed_are_read_again_once_the_options_are_fixed_though_their_archive_is_older_than_the_window()
 {
    let (archive, described) = written();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let zip = data.join("exports.zip");
    std::fs::copy(&archive, &zip).unwrap();
    let month_ago = SystemTime::now() - Duration::from_secs(30 * 86_400);
    std::fs::File::options().write(true).open(&zip).unwrap().set_modified(month_ago).unwrap();
    // A newer object: once everything before it has settled, the cursor passes the archive.
    std::fs::write(data.join("loose.csv"), "id,month,amount,note\nl-1,2026-09,1.00,\n").unwrap();
    let config = |options: &str| {
        let text = format!(
            "[state]\nurl = \"sqlite://state.db\"\n\n[dataflows.Orders]\nsource = {{ type = \"local\", path = \"data\" }}\nformat = {{ plugin = \"csv\", options = {{ {options} }} }}\nsink = {{ url = \"sqlite://tables.db\", table = \"orders\" }}\n"
        );
        std::fs::write(dir.path().join("connector.toml"), text).unwrap();
        Config::load(&dir.path().join("connector.toml")).unwrap()
    };

    // A misspelt option: the CSV members and the loose file fail for good; the JSON Lines member loads.
    let report = runner_run(&config("delimeter = \",\""));
    assert_eq!(report.status, RunStatus::Partial, "{:?}", report.error);
    assert_eq!(rows_per_object(dir.path()).keys().collect::<Vec<_>>(), [LATE]);
    let again = runner_run(&config("delimeter = \",\""));
    assert_eq!(again.counts.objects, 0, "failed for good while read the same way");

    // Fixed, the run reads them differently: the archive is outside the window now, yet it is opened for
    // its failed members, and each loads.
    let fixed = config("delimiter = \",\"");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let preview =
        Runner::new(&fixed, support::host(), runtime.handle().clone()).preview("Orders", 1).unwrap();
    assert!(preview.plan.window_start > month_ago, "the archive is older than the window");
    let report = runner_run(&fixed);
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.counts.objects, 4, "three members and the loose file");
    for (member, key) in [
        ("orders/2026-10.csv", OCTOBER),
        ("orders/2026-11.csv", NOVEMBER),
        ("orders/2026-12.csv.gz", DECEMBER),
    ] {
        assert_eq!(loaded_rows(dir.path(), key), written_rows(&described, member), "{key}, value by value");
    }
    assert_eq!(rows_per_object(dir.path()).get("loose.csv"), Some(&1));
}
