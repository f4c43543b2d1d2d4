//! Formats read by ranges (contract 1.2.0), checked against files written by independent writers, value by
//! value: pyarrow writes Parquet files of every codec and of every physical and common logical type,
//! Python's ElementTree an XML catalogue, fastavro Avro files of every codec and openpyxl a workbook
//! (`tests/support/formats.py`, run by `python.sh` in a virtual environment under `target/`); each says
//! what its files hold as it reads them back, and Sluice's bundled `parquet`, `xml`, `avro` and `xlsx`
//! plugins must read the same. Also: Parquet from S3 by ranged GETs, fetching only the
//! columns asked for; truncated and corrupt files failing alone.

mod support;

use rusqlite::Connection;
use serde_json::Value;
use sluice::config::Config;
use sluice::state::{ObjectStatus, RunStatus, StateStore};
use sluice::sync::{Quiet, RunReport, Runner};
use sluice_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// The Parquet files pyarrow wrote, once for all tests, and what it says each holds.
fn written() -> &'static (PathBuf, Value) {
    static WRITTEN: OnceLock<(PathBuf, Value)> = OnceLock::new();
    WRITTEN.get_or_init(|| write_with("parquet"))
}

/// Runs `formats.py FORMAT` into a folder of its own: the folder, and what the writer says it wrote.
fn write_with(format: &str) -> (PathBuf, Value) {
    let folder = support::root().join("target/formats-written").join(format);
    std::fs::create_dir_all(&folder).unwrap();
    let output = Command::new(support::root().join("tests/support/python.sh"))
        .args(["formats.py", format])
        .arg(&folder)
        .output()
        .expect("running tests/support/python.sh");
    assert!(
        output.status.success(),
        "formats.py (needs python3, and PyPI the first time) failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (folder, serde_json::from_slice(&output.stdout).expect("formats.py prints JSON"))
}

/// `sluice parse --format parquet FILE`: the records, and stderr.
fn parse(file: &Path, options: &[&str]) -> (Vec<Value>, String, Option<i32>) {
    parse_as("parquet", file, options)
}

/// `sluice parse --format FORMAT FILE`: the records, and stderr.
fn parse_as(format: &str, file: &Path, options: &[&str]) -> (Vec<Value>, String, Option<i32>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.args(["parse", "--format", format]).arg(file);
    for option in options {
        command.args(["--option", option]);
    }
    let output = command.output().expect("running sluice");
    let records = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    (records, String::from_utf8_lossy(&output.stderr).into_owned(), output.status.code())
}

/// Where `got` and `want` differ, row by row and column by column (at most ten of them).
fn differences(got: &[Value], want: &[Value]) -> Vec<String> {
    let mut found = Vec::new();
    if got.len() != want.len() {
        found.push(format!("{} rows read, {} written", got.len(), want.len()));
    }
    for (row, (got, want)) in got.iter().zip(want).enumerate() {
        for (column, wanted) in want.as_object().unwrap() {
            let read = got.get(column).unwrap_or(&Value::Null);
            if read != wanted {
                found.push(format!("row {row} column {column}: read {read}, written {wanted}"));
            }
        }
    }
    found.truncate(10);
    found
}

#[test]
fn every_type_and_codec_reads_value_by_value_as_pyarrow_wrote_it() {
    let (folder, described) = written();
    let files = described.as_object().unwrap();
    let mut checked = Vec::new();
    for (file, description) in files {
        let Some(want) = description.get("rows").and_then(Value::as_array) else { continue };
        let (got, stderr, code) = parse(&folder.join(file), &[]);
        assert_eq!(code, Some(0), "{file}: {stderr}");
        let found = differences(&got, want);
        assert!(found.is_empty(), "{file}:\n{}", found.join("\n"));
        checked.push(file.as_str());
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "int96.parquet",
            "orders-brotli.parquet",
            "orders-gzip.parquet",
            "orders-lz4.parquet",
            "orders-none.parquet",
            "orders-snappy.parquet",
            "orders-zstd.parquet",
            "types.parquet"
        ]
    );
}

#[test]
fn options_pick_columns_and_decimals_and_a_wrong_one_is_named() {
    let (folder, _) = written();
    let types = folder.join("types.parquet");
    let (got, stderr, code) = parse(&types, &["columns=[\"price\",\"id\"]", "decimals=float"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(got.len(), 2500);
    // The file's order, not the option's; decimals as the nearest float.
    assert_eq!(got[0], serde_json::json!({ "id": 1, "price": -49.63 }));
    assert_eq!(got[2], serde_json::json!({ "id": 3, "price": null }));

    let (_, stderr, code) = parse(&types, &["columns=[\"id\",\"nope\"]"]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("plugin `parquet` cannot read")
            && stderr
                .contains("option `columns` names `nope`, which the file does not have (it has id, small,"),
        "{stderr}"
    );
    let (_, stderr, _) = parse(&types, &["decimals=exact"]);
    assert!(stderr.contains("option `decimals` is `exact`; expected \"text\" or \"float\""), "{stderr}");
}

const BUCKET: &str = "lake";
const DAY: Duration = Duration::from_secs(86_400);

/// A configuration with one dataflow, `Wide`, reading `source` as Parquet with `options`, into SQLite.
fn config(dir: &Path, source: &str, options: &str) -> Config {
    let text = format!(
        "[state]\nurl = \"sqlite://state.db\"\n\n[dataflows.Wide]\nsource = {{ {source} }}\nformat = {{ plugin = \"parquet\", options = {{ {options} }} }}\nsink = {{ url = \"sqlite://tables.db\", table = \"wide\" }}\n"
    );
    let path = dir.join("connector.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap()
}

fn run(config: &Config) -> RunReport {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    Runner::new(config, support::host(), runtime.handle().clone()).run("Wide", &Quiet).unwrap()
}

/// The table's columns (Sluice's own left out), its row count, and the sums of `c3` and `c17`.
fn loaded(dir: &Path) -> (Vec<String>, i64, i64, i64) {
    let connection = Connection::open(dir.join("tables.db")).unwrap();
    let mut statement = connection.prepare("SELECT name FROM pragma_table_info('wide')").unwrap();
    let columns = statement
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .filter(|name| !name.starts_with("_sluice"))
        .collect();
    let (count, c3, c17) = connection
        .query_row("SELECT count(*), sum(c3), sum(c17) FROM wide", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .unwrap();
    (columns, count, c3, c17)
}

#[test]
fn from_s3_only_the_columns_asked_for_are_fetched_and_a_local_folder_reads_the_same() {
    let (folder, described) = written();
    let wide = std::fs::read(folder.join("wide.parquet")).unwrap();
    let chunk_bytes = &described["wide.parquet"]["column_bytes"];
    let asked: u64 = ["c3", "c17"].iter().map(|c| chunk_bytes[c].as_u64().unwrap()).sum();
    let rows = 100_000i64;
    let sums = ((0..rows).map(|i| i * 4).sum::<i64>(), (0..rows).map(|i| i * 18).sum::<i64>());

    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    s3.put(BUCKET, "wide/part-0.parquet", &wide, SystemTime::now() - DAY);
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        "type = \"s3\", bucket = \"{BUCKET}\", endpoint = \"{}\", region = \"us-east-1\", access_key_id = \"{ACCESS_KEY}\", secret_access_key = \"{SECRET_KEY}\"",
        s3.endpoint()
    );
    let report = run(&config(dir.path(), &source, "columns = [\"c3\", \"c17\"]"));
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(loaded(dir.path()), (vec!["c3".to_string(), "c17".to_string()], rows, sums.0, sums.1));

    // Ranged GETs, each of a column chunk's pages (with a little read ahead), and the footer: close to the
    // two columns' share of the file, a tenth of it.
    let fetched = s3.bytes_served();
    let ranged = s3.ranges();
    assert!(ranged.iter().all(Option::is_some), "every GET is ranged: {ranged:?}");
    let share = asked as f64 / wide.len() as f64;
    let overhead = fetched as f64 / asked as f64;
    println!(
        "fetched {fetched} bytes of {} in {} GETs for 2 of 20 columns ({asked} bytes, {:.1}% of the file): {overhead:.3}x those columns",
        wide.len(),
        ranged.len(),
        share * 100.0
    );
    assert!(fetched >= asked, "the columns asked for were fetched: {fetched} < {asked}");
    assert!(overhead < 1.25, "fetched {fetched} bytes for columns of {asked} bytes ({overhead:.3}x)");

    // The same file from a local folder, read by positioned reads, loads the same.
    let local = tempfile::tempdir().unwrap();
    std::fs::create_dir(local.path().join("data")).unwrap();
    std::fs::write(local.path().join("data/part-0.parquet"), &wide).unwrap();
    let report =
        run(&config(local.path(), "type = \"local\", path = \"data\"", "columns = [\"c3\", \"c17\"]"));
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(loaded(local.path()), (vec!["c3".to_string(), "c17".to_string()], rows, sums.0, sums.1));
}

#[test]
fn truncated_and_corrupt_files_fail_alone_with_the_plugin_and_object_named() {
    let (folder, _) = written();
    let good = std::fs::read(folder.join("orders-snappy.parquet")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("a-good.parquet"), &good).unwrap();
    std::fs::write(data.join("b-truncated.parquet"), &good[..good.len() / 2]).unwrap();
    // The footer's metadata overwritten: the file cannot be opened at all.
    let mut footer = good.clone();
    let end = footer.len() - 8;
    footer[end - 200..end].fill(0xEE);
    std::fs::write(data.join("c-bad-footer.parquet"), &footer).unwrap();
    // A page's compressed bytes overwritten: the file fails where that page is read.
    let mut pages = good.clone();
    let middle = pages.len() / 2;
    pages[middle..middle + 64].fill(0xEE);
    std::fs::write(data.join("d-bad-page.parquet"), &pages).unwrap();
    std::fs::write(data.join("e-not-parquet.parquet"), b"id,name\n1,Ann\n").unwrap();
    std::fs::write(data.join("f-good.parquet"), &good).unwrap();

    let config = config(dir.path(), "type = \"local\", path = \"data\"", "");
    let report = run(&config);
    assert_eq!(report.status, RunStatus::Partial, "{:?}", report.error);
    let mut state = StateStore::open(&config.state_database()).unwrap();
    let ledger = state.ledger("Wide").unwrap();
    let status = |key: &str| {
        let entry = ledger.iter().find(|e| e.key == key).unwrap_or_else(|| panic!("{key} in the ledger"));
        (entry.status, entry.error.clone().unwrap_or_default())
    };
    assert_eq!(status("a-good.parquet").0, ObjectStatus::Loaded);
    assert_eq!(status("f-good.parquet").0, ObjectStatus::Loaded);
    for (key, says) in [
        ("b-truncated.parquet", "not a readable Parquet file"),
        ("c-bad-footer.parquet", "not a readable Parquet file"),
        ("d-bad-page.parquet", "cannot read the Parquet file"),
        ("e-not-parquet.parquet", "not a readable Parquet file"),
    ] {
        let (status, error) = status(key);
        assert_eq!(status, ObjectStatus::Failed, "{key}: {error}");
        assert!(error.contains(&format!("plugin `parquet` cannot read `{key}`")), "{key}: {error}");
        assert!(error.contains(says), "{key}: {error}");
    }
    let connection = Connection::open(dir.path().join("tables.db")).unwrap();
    let per_object: Vec<(String, i64)> = connection
        .prepare("SELECT _sluice_object, count(*) FROM wide GROUP BY 1 ORDER BY 1")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // Nothing of the good files is lost; of the file with a bad page, what was read before it is kept.
    assert_eq!(per_object[0], ("a-good.parquet".to_string(), 5000));
    assert_eq!(per_object.last().unwrap(), &("f-good.parquet".to_string(), 5000));
    println!("{per_object:?}");
}

#[test]
fn an_xml_catalogue_reads_record_by_record_as_elementtree_reads_it() {
    let (folder, described) = write_with("xml");
    let catalog = &described["catalog.xml"];
    let path = format!("record={}", catalog["record"].as_str().unwrap());
    let (got, stderr, code) = parse_as("xml", &folder.join("catalog.xml"), &[&path]);
    assert_eq!(code, Some(0), "{stderr}");
    let found = differences(&got, catalog["rows"].as_array().unwrap());
    assert!(found.is_empty(), "catalog.xml:\n{}", found.join("\n"));
    assert!(stderr.contains("catalog.xml: 500 rows, 0 rejected"), "{stderr}");

    // Cut in the middle of a record: the records before it are kept, and the error names the line.
    let bytes = std::fs::read(folder.join("catalog.xml")).unwrap();
    let cut = folder.join("cut.xml");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (got, stderr, code) = parse_as("xml", &cut, &[&path]);
    assert_ne!(code, Some(0));
    assert!(got.len() > 200 && got.len() < 300, "{} records before the cut", got.len());
    assert!(stderr.contains("plugin `xml` cannot read") && stderr.contains(" at line "), "{stderr}");
}

#[test]
fn avro_files_of_every_codec_read_value_by_value_as_fastavro_reads_them() {
    let (folder, described) = write_with("avro");
    let mut checked = Vec::new();
    for (file, description) in described.as_object().unwrap() {
        let (got, stderr, code) = parse_as("avro", &folder.join(file), &[]);
        assert_eq!(code, Some(0), "{file}: {stderr}");
        let found = differences(&got, description["rows"].as_array().unwrap());
        assert!(found.is_empty(), "{file}:\n{}", found.join("\n"));
        assert!(stderr.contains(&format!("{file}: 3000 rows, 0 rejected")), "{stderr}");
        checked.push(file.as_str());
    }
    checked.sort();
    assert_eq!(
        checked,
        ["orders-deflate.avro", "orders-null.avro", "orders-snappy.avro", "orders-zstandard.avro"]
    );

    // Cut in the middle: the records of the whole blocks before the cut are kept, and the error names the
    // record it could not read.
    let bytes = std::fs::read(folder.join("orders-deflate.avro")).unwrap();
    let cut = folder.join("cut.avro");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (got, stderr, code) = parse_as("avro", &cut, &[]);
    assert_ne!(code, Some(0));
    assert!(!got.is_empty() && got.len() < 3000, "{} records before the cut", got.len());
    assert!(
        stderr.contains("plugin `avro` cannot read")
            && stderr.contains(&format!("record {} cannot be read", got.len() + 1)),
        "{stderr}"
    );
    let not_avro = folder.join("not-avro.avro");
    std::fs::write(&not_avro, b"id,name\n1,Ann\n").unwrap();
    let (_, stderr, code) = parse_as("avro", &not_avro, &[]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("not an Avro object container file"), "{stderr}");
}

#[test]
fn an_excel_sheet_reads_by_name_or_position_under_its_header_row_as_openpyxl_reads_it() {
    let (folder, described) = write_with("xlsx");
    let workbook = folder.join("orders.xlsx");
    let want = described["orders.xlsx"]["rows"].as_array().unwrap();
    for sheet in ["sheet=Orders", "sheet=2"] {
        let (got, stderr, code) = parse_as("xlsx", &workbook, &[sheet, "header_row=2"]);
        assert_eq!(code, Some(0), "{sheet}: {stderr}");
        let found = differences(&got, want);
        assert!(found.is_empty(), "{sheet}:\n{}", found.join("\n"));
        // The empty row between the 599th and 600th orders is skipped.
        assert!(stderr.contains("orders.xlsx: 1200 rows, 0 rejected"), "{stderr}");
    }
    // The first sheet where none is named; its one cell is the header, so no rows.
    let (got, _, code) = parse_as("xlsx", &workbook, &[]);
    assert_eq!((got.len(), code), (0, Some(0)));
    // No header: the title row is a record, columns named by their letters.
    let (got, _, _) = parse_as("xlsx", &workbook, &["sheet=Orders", "header_row=0"]);
    assert_eq!(got[0]["A"], "Orders, November 2026");
    assert_eq!((got[1]["A"].as_str(), got[1]["I"].as_str()), (Some("id"), Some("note")));

    let (_, stderr, code) = parse_as("xlsx", &workbook, &["sheet=Invoices"]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("option `sheet` is `Invoices`: no sheet has that name or position; the sheets are `Notes`, `Orders`"),
        "{stderr}"
    );
    let bytes = std::fs::read(&workbook).unwrap();
    let cut = folder.join("cut.xlsx");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (_, stderr, code) = parse_as("xlsx", &cut, &["sheet=Orders"]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("plugin `xlsx` cannot read") && stderr.contains("not an Excel workbook (.xlsx)"),
        "{stderr}"
    );
}
