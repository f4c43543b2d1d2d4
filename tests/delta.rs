//! The Delta Lake tables sink, run from the terminal as users run it, with what it wrote read back by an
//! independent reader: delta-rs's Python binding and pyarrow (`tests/support/delta_reader.py`, run by
//! `python.sh`, which installs them from PyPI under target/ the first time), through SQLite in memory so
//! checks read as SQL.

mod support;

use sluice_testkit::S3Server;
use sluice_testkit::s3::{ACCESS_KEY, SECRET_KEY};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// `sluice ARGS` in `dir`.
fn sluice(dir: &Path, args: &[&str]) -> Output {
    support::output(
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(dir)
            .env("SLUICE_CACHE_DIR", support::root().join("target").join("test-plugin-cache"))
            .env("TEST_S3_SECRET", sluice_testkit::s3::SECRET_KEY)
            .args(args),
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `sluice ARGS` and expects exit code `code`; its standard output.
fn expect(dir: &Path, args: &[&str], code: i32) -> String {
    let output = sluice(dir, args);
    assert_eq!(
        output.status.code(),
        Some(code),
        "sluice {args:?}: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// A folder with a `connector.toml` whose dataflow `People` reads JSON-lines files from `data/` into Delta
/// tables under `lake/`, with `sink` settings beside the URL.
fn people(sink: &str) -> tempfile::TempDir {
    people_at("url = \"delta+file://lake\"", sink)
}

/// `People` with its sink's `location` settings (the URL, and how it is reached) and `sink` settings.
fn people_at(location: &str, sink: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let sink = if sink.is_empty() { String::new() } else { format!(", {sink}") };
    std::fs::write(
        dir.path().join("connector.toml"),
        format!(
            "[dataflows.People]\nsource = {{ type = \"local\", path = \"data\" }}\nformat = {{ plugin = \"jsonl\" }}\nsink = {{ {location}{sink} }}\n"
        ),
    )
    .unwrap();
    dir
}

/// Writes a file whose mtime is `minutes_ago`, so files sort in the order a test writes them.
fn put(dir: &Path, name: &str, text: &str, minutes_ago: u64) {
    let path = dir.join("data").join(name);
    std::fs::write(&path, text).unwrap();
    let at = SystemTime::now() - Duration::from_secs(minutes_ago * 60);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(at).unwrap();
}

fn table(dir: &Path) -> PathBuf {
    dir.join("lake/people/people")
}

fn rejects(dir: &Path) -> PathBuf {
    dir.join("lake/people/_sluice_rejects/people")
}

/// The independent reader; tables on `s3` are read with the key pair `keys`.
fn reader(s3: Option<(&S3Server, (&str, &str))>) -> Command {
    let mut command = Command::new(support::root().join("tests/support/python.sh"));
    command.arg("delta_reader.py");
    if let Some((server, (key, secret))) = s3 {
        command
            .env("READER_S3_ENDPOINT", server.endpoint())
            .env("READER_S3_ACCESS_KEY", key)
            .env("READER_S3_SECRET_KEY", secret);
    }
    command
}

/// The rows of `sql` over the tables named (`name=location`: a folder, or `s3://` on `s3`), as the
/// independent reader reads them.
fn read_at(s3: Option<(&S3Server, (&str, &str))>, tables: &[(&str, String)], sql: &str) -> Vec<String> {
    let mut command = reader(s3);
    command.arg("sql");
    for (name, location) in tables {
        command.arg(format!("{name}={location}"));
    }
    let output = command.arg("--").arg(sql).output().expect("running the Delta reader");
    assert!(output.status.success(), "{sql}: {}", text(&output.stderr));
    text(&output.stdout).lines().map(str::to_string).collect()
}

/// The rows of `sql` over the tables named (`name=folder`).
fn read(tables: &[(&str, &Path)], sql: &str) -> Vec<String> {
    let tables: Vec<(&str, String)> =
        tables.iter().map(|(name, folder)| (*name, folder.display().to_string())).collect();
    read_at(None, &tables, sql)
}

/// `people`'s rows through `sql`.
fn people_rows(dir: &Path, sql: &str) -> Vec<String> {
    read(&[("people", &table(dir))], sql)
}

fn count(dir: &Path, sql: &str) -> i64 {
    people_rows(dir, sql)[0].parse().unwrap()
}

/// The table's versions, newest first, with their operations and, where Sluice made them, the run whose
/// rows they hold (`run`) or whose fencing token they record (`fence`).
fn history(folder: &Path) -> Vec<serde_json::Value> {
    history_at(None, &folder.display().to_string())
}

fn history_at(s3: Option<(&S3Server, (&str, &str))>, location: &str) -> Vec<serde_json::Value> {
    let output = reader(s3).arg("history").arg(location).output().expect("running the Delta reader");
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// Every row of the table, in a stable order: what "the table as it was" compares.
fn dump(dir: &Path) -> Vec<String> {
    people_rows(dir, "SELECT * FROM people ORDER BY _sluice_run, _sluice_object, _sluice_line")
}

#[test]
fn a_replay_of_rejects_is_refused_naming_why_and_changes_nothing() {
    let dir = people("");
    put(dir.path(), "a.jsonl", "{\"id\": 1}\nnot json\n", 3);
    expect(dir.path(), &["run"], 0);
    let output = sluice(dir.path(), &["run", "People", "--replay-rejects"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains(
            "dataflow `People` writes Delta tables, which do not keep the step that refused each row yet"
        ),
        "{}",
        text(&output.stderr)
    );
    let runs: Vec<serde_json::Value> =
        serde_json::from_str(&expect(dir.path(), &["history", "People", "--json"], 0)).unwrap();
    assert_eq!(runs.len(), 1, "no run was recorded");
    assert_eq!(read(&[("r", &rejects(dir.path()))], "SELECT line FROM r"), ["2"]);
}

#[test]
fn append_loads_rows_with_lineage_and_rejects_and_the_next_run_takes_only_what_changed() {
    let dir = people("");
    put(
        dir.path(),
        "a.jsonl",
        "{\"id\": 1, \"name\": \"Ann\"}\n{\"id\": 2, \"name\": \"Bob\"}\nnot json\n",
        3,
    );
    put(dir.path(), "b.jsonl", "{\"id\": 3, \"name\": \"Cy\", \"city\": \"Oslo\"}\n", 2);
    let out = expect(dir.path(), &["run"], 0);
    assert!(out.contains("2 objects, 3 rows, 1 rejected"), "{out}");

    assert_eq!(
        people_rows(
            dir.path(),
            "SELECT id, name, city, _sluice_object, _sluice_line FROM people ORDER BY id"
        ),
        ["1\tAnn\t\ta.jsonl\t1", "2\tBob\t\ta.jsonl\t2", "3\tCy\tOslo\tb.jsonl\t1"]
    );
    let reject = read(&[("r", &rejects(dir.path()))], "SELECT object, line, raw FROM r");
    assert_eq!(reject, ["a.jsonl\t3\tnot json"]);
    // Two objects, one commit: the run's objects share a version and a file.
    let versions = history(&table(dir.path()));
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(versions[0]["operation"], "CREATE TABLE");

    let out = expect(dir.path(), &["run"], 0);
    assert!(out.contains("0 objects"), "nothing new: {out}");
    put(dir.path(), "b.jsonl", "{\"id\": 4, \"name\": \"Di\", \"score\": 9.5}\n", 0);
    expect(dir.path(), &["run"], 0);
    assert_eq!(count(dir.path(), "SELECT count(*) FROM people"), 4);
    assert_eq!(
        people_rows(dir.path(), "SELECT score FROM people WHERE id = 4"),
        ["9.5"],
        "a new column joins"
    );
    let versions = history(&table(dir.path()));
    let loads: Vec<&serde_json::Value> = versions.iter().filter(|v| !v["run"].is_null()).collect();
    assert_eq!(loads.len(), 2, "{versions:?}");
    // Each later run recorded its fencing token first, in a version of its own.
    assert_eq!(versions.iter().filter(|v| !v["fence"].is_null()).count(), 2, "{versions:?}");
}

/// Objects of `People` in `dir` (configured with `commit_objects = 10`), each of 50 rows.
const KILLED_OBJECTS: usize = 120;

/// Puts [`KILLED_OBJECTS`] objects, starts a run and kills it (SIGKILL) once `commits()` says 3 commits
/// landed, then checks with `rows` (the table's rows through SQL) that whole groups only were committed,
/// and that the next run finishes the load with every row once.
fn killed_run_is_finished_by_the_next(
    dir: &Path,
    commits: impl Fn() -> usize,
    rows: impl Fn(&str) -> Vec<String>,
) {
    for object in 0..KILLED_OBJECTS {
        let body: String =
            (0..50).map(|row| format!("{{\"id\": {}, \"object\": {object}}}\n", object * 50 + row)).collect();
        put(dir, &format!("{object:04}.jsonl"), &body, 10);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir)
        .env("SLUICE_CACHE_DIR", support::root().join("target").join("test-plugin-cache"))
        .env("TEST_S3_SECRET", SECRET_KEY)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while commits() < 3 {
        assert!(Instant::now() < deadline, "no commits in time");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial: i64 = rows("SELECT count(*) FROM people")[0].parse().unwrap();
    assert!(partial > 0 && partial < (KILLED_OBJECTS * 50) as i64, "{partial} rows after the kill");
    assert_eq!(partial % 500, 0, "whole groups of 10 objects only: {partial}");

    expect(dir, &["run"], 0);
    let total = KILLED_OBJECTS * 50;
    assert_eq!(
        rows("SELECT count(*), count(DISTINCT id) FROM people"),
        [format!("{total}\t{total}")],
        "every row once"
    );
}

#[test]
fn objects_are_committed_in_groups_and_a_killed_run_is_finished_by_the_next_with_every_row_once() {
    let dir = people("commit_objects = 10");
    let commits = || {
        let log = std::fs::read_dir(table(dir.path()).join("_delta_log"));
        log.map(|log| {
            log.filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "json")).count()
        })
        .unwrap_or(0)
    };
    killed_run_is_finished_by_the_next(dir.path(), commits, |sql| people_rows(dir.path(), sql));
    // Ten objects to a commit, and their rows share files: far fewer files than objects.
    let files = std::fs::read_dir(table(dir.path()))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "parquet"))
        .count();
    assert!(files <= KILLED_OBJECTS / 10 + 2, "{files} data files for {KILLED_OBJECTS} objects");
}

#[test]
fn merge_upserts_on_the_key_a_later_row_wins_and_rollback_restores_the_table_exactly() {
    let dir = people("mode = \"merge\", key = [\"id\"]");
    put(dir.path(), "a.jsonl", "{\"id\": 1, \"name\": \"Ann\"}\n{\"id\": 2, \"name\": \"Bob\"}\n", 3);
    expect(dir.path(), &["run"], 0);
    let before = dump(dir.path());

    put(
        dir.path(),
        "b.jsonl",
        "{\"id\": 2, \"name\": \"Bobby\"}\n{\"id\": 3, \"name\": \"Cy\"}\n{\"id\": 2, \"name\": \"Robert\"}\n{\"name\": \"no key\"}\n",
        1,
    );
    expect(dir.path(), &["run"], 0);
    assert_eq!(
        people_rows(dir.path(), "SELECT id || ':' || name FROM people ORDER BY id"),
        ["1:Ann", "2:Robert", "3:Cy"]
    );
    let reason = read(&[("r", &rejects(dir.path()))], "SELECT reason FROM r");
    assert_eq!(reason, ["the merge key column `id` is empty"]);

    let out = expect(dir.path(), &["rollback", "People"], 0);
    assert!(out.contains("run 2"), "{out}");
    assert_eq!(dump(dir.path()), before, "rows and values as before the merge");
    assert_eq!(read(&[("r", &rejects(dir.path()))], "SELECT count(*) FROM r"), ["0"], "its rejects go too");
    assert_eq!(history(&table(dir.path()))[0]["operation"], "RESTORE");
}

#[test]
fn a_merge_reads_only_the_committed_files_whose_key_statistics_may_hold_its_keys() {
    let dir = people("mode = \"merge\", key = [\"id\"]");
    // `sluice run`, with the sink's account of the files a merge read.
    let run = |dir: &Path| {
        let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(dir)
            .env("SLUICE_CACHE_DIR", support::root().join("target").join("test-plugin-cache"))
            .env("SLUICE_LOG", "sluice::sink=info")
            .arg("run")
            .output()
            .expect("running sluice");
        assert!(output.status.success(), "{}{}", text(&output.stdout), text(&output.stderr));
        text(&output.stderr)
    };
    put(dir.path(), "a.jsonl", "{\"id\": 1, \"name\": \"Ann\"}\n{\"id\": 2, \"name\": \"Bob\"}\n", 3);
    run(dir.path());
    put(dir.path(), "b.jsonl", "{\"id\": 10, \"name\": \"Jo\"}\n{\"id\": 11, \"name\": \"Kim\"}\n", 2);
    let log = run(dir.path());
    assert!(
        log.contains("merge: 0 of 1 committed files may hold the keys"),
        "ids 10 and 11 are past 1..2: {log}"
    );
    put(dir.path(), "c.jsonl", "{\"id\": 2, \"name\": \"Bobby\"}\n{\"id\": 20, \"name\": \"Lu\"}\n", 1);
    let log = run(dir.path());
    assert!(log.contains("merge: 1 of 2 committed files may hold the keys"), "only 1..2 holds id 2: {log}");
    assert_eq!(
        people_rows(dir.path(), "SELECT id || ':' || name FROM people ORDER BY id"),
        ["1:Ann", "2:Bobby", "10:Jo", "11:Kim", "20:Lu"]
    );
}

#[test]
fn replace_makes_the_table_what_the_run_loaded_and_rollback_twice_goes_back_to_no_table() {
    let dir = people("mode = \"replace\"");
    put(dir.path(), "a.jsonl", "{\"id\": 1}\n{\"id\": 2}\n", 3);
    expect(dir.path(), &["run"], 0);
    let monday = dump(dir.path());
    put(dir.path(), "b.jsonl", "{\"id\": 3}\n", 1);
    expect(dir.path(), &["run"], 0);
    assert_eq!(people_rows(dir.path(), "SELECT id FROM people ORDER BY id"), ["3"]);

    expect(dir.path(), &["rollback", "People"], 0);
    assert_eq!(dump(dir.path()), monday);
    expect(dir.path(), &["rollback", "People"], 0);
    assert!(
        !table(dir.path()).join("_delta_log").exists(),
        "the first run made the table: no table before it"
    );
}

#[test]
fn a_type_conflict_widens_the_column_to_string_or_fails_the_object_as_configured() {
    let dir = people("on_type_conflict = \"fail\"");
    put(dir.path(), "a.jsonl", "{\"id\": 1, \"code\": 17}\n", 3);
    expect(dir.path(), &["run"], 0);
    let before = dump(dir.path());
    put(dir.path(), "b.jsonl", "{\"id\": 2, \"code\": 18}\n{\"id\": 3, \"code\": \"A-17\"}\n", 1);
    let out = sluice(dir.path(), &["run"]);
    assert_eq!(out.status.code(), Some(1));
    let error = text(&out.stdout) + &text(&out.stderr);
    assert!(error.contains("line 2") && error.contains("`code`") && error.contains("A-17"), "{error}");
    assert_eq!(dump(dir.path()), before, "nothing of the object was loaded");

    let config = std::fs::read_to_string(dir.path().join("connector.toml")).unwrap();
    std::fs::write(dir.path().join("connector.toml"), config.replace("\"fail\"", "\"text\"")).unwrap();
    expect(dir.path(), &["run"], 0);
    assert_eq!(
        people_rows(dir.path(), "SELECT code, typeof(code) FROM people ORDER BY id"),
        ["17\ttext", "18\ttext", "A-17\ttext"],
        "the column is a string now, the earlier values in their text form"
    );
}

#[test]
fn remove_deletes_the_table_and_the_next_run_starts_from_scratch() {
    let dir = people("");
    put(dir.path(), "a.jsonl", "{\"id\": 1}\nnope\n", 3);
    expect(dir.path(), &["run"], 0);
    expect(dir.path(), &["remove", "People", "--yes"], 0);
    assert!(!table(dir.path()).exists() && !rejects(dir.path()).exists());
    expect(dir.path(), &["run"], 0);
    assert_eq!(count(dir.path(), "SELECT count(*) FROM people"), 1);
}

#[test]
fn the_dataflow_list_shows_the_type_and_the_table_with_its_purpose_kind_rows_and_columns() {
    let dir = people("purpose = \"customer-360\", kind = \"metadata\"");
    put(dir.path(), "a.jsonl", "{\"id\": 1, \"name\": \"Ann\"}\n", 3);
    expect(dir.path(), &["run"], 0);
    let list = expect(dir.path(), &["dataflows"], 0);
    assert!(list.contains("local ─► delta"), "{list}");
    let tables = expect(dir.path(), &["dataflows", "--tables", "--json"], 0);
    let tables: serde_json::Value = serde_json::from_str(&tables).unwrap();
    assert_eq!(tables[0]["purpose"], "customer-360");
    assert_eq!(tables[0]["kind"], "metadata");
    assert_eq!(tables[0]["rows"], 1);
    assert_eq!(tables[0]["columns"], 2);
    let log =
        std::fs::read_to_string(table(dir.path()).join("_delta_log/00000000000000000000.json")).unwrap();
    assert!(log.contains("\"sluice.purpose\":\"customer-360\""), "kept in the table's properties: {log}");

    // What the configuration changes later goes into the properties with the next commit...
    let config = std::fs::read_to_string(dir.path().join("connector.toml")).unwrap();
    let merged = config.replace(
        "purpose = \"customer-360\"",
        "purpose = \"privacy-metadata\", mode = \"merge\", key = [\"id\"]",
    );
    std::fs::write(dir.path().join("connector.toml"), &merged).unwrap();
    put(dir.path(), "b.jsonl", "{\"id\": 1, \"name\": \"Anna\"}\n", 2);
    expect(dir.path(), &["run"], 0);
    let output = reader(None).arg("properties").arg(table(dir.path())).output().unwrap();
    let properties: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(properties["sluice.purpose"], "privacy-metadata", "{properties}");
    assert_eq!((&properties["sluice.mode"], &properties["sluice.key"]), (&"merge".into(), &"id".into()));
    // ...so that a later change of the merge key is refused, as on the databases.
    std::fs::write(dir.path().join("connector.toml"), merged.replace("key = [\"id\"]", "key = [\"name\"]"))
        .unwrap();
    put(dir.path(), "c.jsonl", "{\"id\": 2, \"name\": \"Bo\"}\n", 1);
    let out = sluice(dir.path(), &["run"]);
    let error = text(&out.stdout) + &text(&out.stderr);
    assert!(error.contains("merged its rows on [id] and is now set to merge on [name]"), "{error}");
}

#[test]
fn a_folder_that_holds_something_else_is_refused_and_check_says_whether_the_location_is_writable() {
    let dir = people("");
    put(dir.path(), "a.jsonl", "{\"id\": 1}\n", 3);
    std::fs::create_dir_all(table(dir.path())).unwrap();
    std::fs::write(table(dir.path()).join("notes.txt"), "mine").unwrap();
    let out = sluice(dir.path(), &["run"]);
    let error = text(&out.stdout) + &text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{error}");
    assert!(error.contains("holds files but no Delta table"), "{error}");
    assert_eq!(std::fs::read_to_string(table(dir.path()).join("notes.txt")).unwrap(), "mine");

    let checked = expect(dir.path(), &["check"], 0);
    assert!(checked.contains("delta+file://") && checked.contains("writable"), "{checked}");
}

#[test]
fn a_location_that_cannot_be_written_is_named_by_check_and_the_run_and_the_objects_load_once_it_can() {
    let dir = people("");
    put(dir.path(), "a.jsonl", "{\"id\": 1}\n{\"id\": 2}\n", 3);
    // The lake's folder is a file: nothing can be made under it.
    std::fs::write(dir.path().join("lake"), "not a folder").unwrap();
    for args in [&["check"][..], &["run"][..]] {
        let error = failing(dir.path(), args);
        assert!(error.contains("cannot make") && error.contains("lake"), "the location is named: {error}");
    }
    std::fs::remove_file(dir.path().join("lake")).unwrap();
    expect(dir.path(), &["run"], 0);
    assert_eq!(count(dir.path(), "SELECT count(*) FROM people"), 2, "the objects were still to load");
}

#[test]
fn a_table_another_tool_made_with_a_type_sluice_does_not_write_is_refused_and_left_as_it_was() {
    let dir = people("");
    put(dir.path(), "a.jsonl", "{\"id\": 1}\n", 3);
    let made = reader(None).arg("foreign").arg(table(dir.path())).output().expect("running the Delta reader");
    assert!(made.status.success(), "{}", text(&made.stderr));
    let error = failing(dir.path(), &["run"]);
    assert!(error.contains("`seen`") && error.contains("a type Sluice does not write"), "{error}");
    assert_eq!(
        people_rows(dir.path(), "SELECT id FROM people"),
        ["7"],
        "the table is as the other tool left it"
    );
    assert_eq!(history(&table(dir.path())).len(), 1, "no version added");
    // Pointed at a table of its own, the run loads the object it could not load before.
    let config = std::fs::read_to_string(dir.path().join("connector.toml")).unwrap();
    std::fs::write(dir.path().join("connector.toml"), config.replace("lake", "lake2")).unwrap();
    expect(dir.path(), &["run"], 0);
    assert_eq!(read(&[("p", &dir.path().join("lake2/people/people"))], "SELECT count(*) FROM p"), ["1"]);
}

#[test]
fn an_object_that_fails_after_some_of_its_rows_were_written_leaves_none_of_them_and_its_group_commits() {
    use std::io::Write;
    let dir = people("");
    put(dir.path(), "a.jsonl", "{\"id\": 1}\n", 3);
    // A gzip stream cut short: its first megabytes parse and are written before the read fails.
    let mut body = String::new();
    for id in 0..300_000 {
        body.push_str(&format!("{{\"id\": {}, \"note\": \"row {id} of the broken file\"}}\n", 1000 + id));
    }
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(body.as_bytes()).unwrap();
    let compressed = gzip.finish().unwrap();
    let cut = &compressed[..compressed.len() * 3 / 5];
    let path = dir.path().join("data/b.jsonl.gz");
    std::fs::write(&path, cut).unwrap();
    let at = SystemTime::now() - Duration::from_secs(120);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(at).unwrap();
    put(dir.path(), "c.jsonl", "{\"id\": 3}\n", 1);

    let out = sluice(dir.path(), &["run"]);
    assert_eq!(out.status.code(), Some(1), "a partial run: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("b.jsonl.gz"), "{}", text(&out.stderr));
    assert_eq!(people_rows(dir.path(), "SELECT count(*), group_concat(id) FROM people"), ["2\t1,3"]);
}

#[test]
fn stripe_objects_become_delta_tables_merged_on_id_as_skypoint_lands_them_in_a_lakehouse() {
    use sluice_testkit::stripe::{StripeServer, TEST_KEY};
    let stripe = StripeServer::start();
    let now = SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    for n in 0..40 {
        let customer =
            serde_json::json!({ "id": format!("cus_{n:03}"), "email": format!("c{n}@example.com") });
        stripe.insert("customers", customer, now - 86_400 + n * 600);
    }
    stripe.insert("products", serde_json::json!({ "id": "prod_1", "name": "P1", "active": true }), now - 60);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("connector.toml"),
        format!(
            "[sink]\nurl = \"delta+file://lake\"\n\n[dataflows.Billing.source]\ntype = \"stripe\"\ntables = [\"customers\", \"products\"]\napi_key = \"{TEST_KEY}\"\napi_base = \"{}\"\nrate_limit = 500\n",
            stripe.url()
        ),
    )
    .unwrap();
    let customers = dir.path().join("lake/billing/customers");
    let rows = |sql: &str| read(&[("customers", &customers)], sql);

    let out = expect(dir.path(), &["run"], 0);
    assert!(out.contains("Billing: succeeded — 2 tables, 41 rows"), "{out}");
    assert_eq!(rows("SELECT count(*) FROM customers"), ["40"]);
    assert_eq!(read(&[("p", &dir.path().join("lake/billing/products"))], "SELECT name FROM p"), ["P1"]);

    // Nothing new, then a new customer and a changed one: merged on `id`, every customer once.
    expect(dir.path(), &["run"], 0);
    stripe.insert("customers", serde_json::json!({ "id": "cus_new", "email": "new@example.com" }), now);
    stripe.update("customers", "cus_000", serde_json::json!({ "email": "changed@example.com" }), now);
    expect(dir.path(), &["run"], 0);
    assert_eq!(rows("SELECT count(*), count(DISTINCT id) FROM customers"), ["41\t41"]);
    assert_eq!(rows("SELECT email FROM customers WHERE id = 'cus_000'"), ["changed@example.com"]);

    let list = expect(dir.path(), &["dataflows"], 0);
    assert!(list.contains("stripe ─► delta"), "{list}");
    // A rollback takes the last run's merge back.
    expect(dir.path(), &["rollback", "Billing"], 0);
    assert_eq!(rows("SELECT email FROM customers WHERE id = 'cus_000'"), ["c0@example.com"]);
}

#[test]
fn optimize_merges_small_files_and_deletes_unreferenced_ones_and_a_rollback_still_works() {
    let dir = people("versions = 2");
    for (run, name) in ["a", "b", "c"].iter().enumerate() {
        put(
            dir.path(),
            &format!("{name}.jsonl"),
            &format!("{{\"id\": {run}}}\n{{\"id\": {}}}\n", run + 10),
            9 - run as u64,
        );
        expect(dir.path(), &["run"], 0);
    }
    let after_two = people_rows(dir.path(), "SELECT id FROM people WHERE _sluice_run < 3 ORDER BY id");
    let everything = dump(dir.path());
    // A file no commit names (a group that never committed).
    std::fs::write(table(dir.path()).join("part-orphan.parquet"), b"not committed").unwrap();

    let out = expect(dir.path(), &["optimize", "People"], 0);
    assert!(out.contains("3 small files merged into 1"), "{out}");
    assert!(!table(dir.path()).join("part-orphan.parquet").exists(), "{out}");
    assert_eq!(dump(dir.path()), everything, "the same rows");
    let operations: Vec<String> =
        history(&table(dir.path())).iter().map(|v| v["operation"].as_str().unwrap().to_string()).collect();
    assert_eq!(operations[..3], ["VACUUM END", "VACUUM START", "OPTIMIZE"], "{operations:?}");

    expect(dir.path(), &["rollback", "People"], 0);
    assert_eq!(people_rows(dir.path(), "SELECT id FROM people ORDER BY id"), after_two);
}

// Delta tables on S3: the in-process S3 server, spoken to over the wire by object_store, as to AWS.

const LAKE: &str = "lake";

/// `People` as above, with its tables under `delta+s3://lake/tables` on `server`, reached with `access`
/// (the sink's `s3` table, inside its braces).
fn people_on_s3(server: &S3Server, access: &str, sink: &str) -> tempfile::TempDir {
    let endpoint = server.endpoint();
    people_at(
        &format!("url = \"delta+s3://{LAKE}/tables\", s3 = {{ endpoint = \"{endpoint}\"{access} }}"),
        sink,
    )
}

/// The server's own key pair, the secret taken from the environment as users would.
fn own_keys() -> String {
    format!(", access_key_id = \"{ACCESS_KEY}\", secret_access_key = \"${{TEST_S3_SECRET}}\"")
}

const PEOPLE_ON_S3: &str = "s3://lake/tables/people/people";

fn s3_rows(server: &S3Server, sql: &str) -> Vec<String> {
    read_at(Some((server, (ACCESS_KEY, SECRET_KEY))), &[("people", PEOPLE_ON_S3.to_string())], sql)
}

/// The run's output and error together, for a run expected to fail with `code`.
fn failing(dir: &Path, args: &[&str]) -> String {
    let out = sluice(dir, args);
    let all = text(&out.stdout) + &text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{all}");
    all
}

#[test]
fn on_s3_merge_and_rollback_write_a_table_the_independent_reader_reads_and_commits_are_conditional_puts() {
    let server = S3Server::start();
    server.create_bucket(LAKE);
    let dir = people_on_s3(&server, &own_keys(), "mode = \"merge\", key = [\"id\"]");
    put(dir.path(), "a.jsonl", "{\"id\": 1, \"name\": \"Ann\"}\n{\"id\": 2, \"name\": \"Bob\"}\noops\n", 3);
    let checked = expect(dir.path(), &["check"], 0);
    assert!(checked.contains("delta+s3://lake/tables") && checked.contains("writable"), "{checked}");

    let out = expect(dir.path(), &["run"], 0);
    assert!(
        out.contains("1 objects, 2 rows, 1 rejected") || out.contains("1 object, 2 rows, 1 rejected"),
        "{out}"
    );
    assert_eq!(s3_rows(&server, "SELECT id, name FROM people ORDER BY id"), ["1\tAnn", "2\tBob"]);
    let rejects = read_at(
        Some((&server, (ACCESS_KEY, SECRET_KEY))),
        &[("r", "s3://lake/tables/people/_sluice_rejects/people".to_string())],
        "SELECT line, raw FROM r",
    );
    assert_eq!(rejects, ["3\toops"]);

    put(dir.path(), "b.jsonl", "{\"id\": 2, \"name\": \"Bo\"}\n{\"id\": 3, \"name\": \"Cy\"}\n", 2);
    expect(dir.path(), &["run"], 0);
    assert_eq!(s3_rows(&server, "SELECT id, name FROM people ORDER BY id"), ["1\tAnn", "2\tBo", "3\tCy"]);
    let runs: Vec<i64> = history_at(Some((&server, (ACCESS_KEY, SECRET_KEY))), PEOPLE_ON_S3)
        .iter()
        .filter_map(|v| v["run"].as_i64())
        .collect();
    assert_eq!(runs, [2, 1], "each run's rows in a version of their own, newest first");

    expect(dir.path(), &["rollback", "People"], 0);
    assert_eq!(s3_rows(&server, "SELECT id, name FROM people ORDER BY id"), ["1\tAnn", "2\tBob"]);

    // Every commit was a conditional PUT of the next version; none met another writer. Everything the
    // sink wrote is under its prefix.
    assert_eq!(server.refused_commits(), 0);
    let stray: Vec<String> =
        server.keys(LAKE, "").into_iter().filter(|k| !k.starts_with("tables/people/")).collect();
    assert!(stray.is_empty(), "{stray:?}");

    expect(dir.path(), &["remove", "People", "--yes"], 0);
    assert_eq!(server.keys(LAKE, "tables/"), Vec::<String>::new());
}

#[test]
fn on_s3_a_commit_another_writer_wins_is_retried_on_the_next_version_and_one_lost_too_often_fails_clearly() {
    let server = S3Server::start();
    server.create_bucket(LAKE);
    let dir = people_on_s3(&server, &own_keys(), "");
    put(dir.path(), "a.jsonl", "{\"id\": 1}\n{\"id\": 2}\n", 4);
    expect(dir.path(), &["run"], 0);

    // Another writer takes the version the next commit was to have: S3 refuses the PUT (412), and the
    // commit lands on the version after.
    put(dir.path(), "b.jsonl", "{\"id\": 3}\n", 3);
    server.beat_next_commits(1);
    expect(dir.path(), &["run"], 0);
    assert_eq!(server.refused_commits(), 1);
    assert_eq!(s3_rows(&server, "SELECT count(*), sum(id) FROM people"), ["3\t6"]);

    // A writer that loses every version it tries: the run fails saying so, and nothing is lost.
    put(dir.path(), "c.jsonl", "{\"id\": 4}\n", 2);
    server.beat_next_commits(100);
    let error = failing(dir.path(), &["run"]);
    assert!(error.contains("another writer committed to the Delta table"), "{error}");
    assert!(server.refused_commits() > 2, "retried before failing");
    server.beat_next_commits(0);
    expect(dir.path(), &["run"], 0);
    assert_eq!(s3_rows(&server, "SELECT count(*), count(DISTINCT id), sum(id) FROM people"), ["4\t4\t10"]);
}

#[test]
fn on_s3_refused_credentials_fail_clearly_without_showing_them_and_a_role_with_its_external_id_writes() {
    use sluice_testkit::sts::{ROLE_ACCESS_KEY, ROLE_SECRET_KEY, Role};
    let role = Role {
        arn: "arn:aws:iam::210987654321:role/sluice-lake".to_string(),
        external_id: "lake-external-id".to_string(),
    };
    let server = S3Server::start_with_role(role.clone());
    server.create_bucket(LAKE);

    // A wrong secret: check and run both fail naming what to check, and never show the keys.
    let wrong = format!(", access_key_id = \"{ACCESS_KEY}\", secret_access_key = \"not-the-secret-key\"");
    let dir = people_on_s3(&server, &wrong, "");
    put(dir.path(), "a.jsonl", "{\"id\": 1}\n", 3);
    for args in [&["check"][..], &["run"][..]] {
        let error = failing(dir.path(), args);
        assert!(error.contains("access denied"), "{error}");
        assert!(!error.contains("not-the-secret-key") && !error.contains(ACCESS_KEY), "{error}");
    }

    // The caller's own key may only assume the role; the role, with its external ID, writes the table.
    let with_role =
        format!("{}, role_arn = \"{}\", external_id = \"{}\"", own_keys(), role.arn, role.external_id);
    let dir = people_on_s3(&server, &with_role, "");
    put(dir.path(), "a.jsonl", "{\"id\": 1}\n{\"id\": 2}\n", 3);
    expect(dir.path(), &["run"], 0);
    assert!(server.assume_role_calls() >= 1);
    let rows = read_at(
        Some((&server, (ROLE_ACCESS_KEY, ROLE_SECRET_KEY))),
        &[("people", PEOPLE_ON_S3.to_string())],
        "SELECT count(*) FROM people",
    );
    assert_eq!(rows, ["2"]);

    // A wrong external ID: refused by STS, and the ID is not shown.
    let guessed = format!("{}, role_arn = \"{}\", external_id = \"guessed-id\"", own_keys(), role.arn);
    let dir = people_on_s3(&server, &guessed, "");
    put(dir.path(), "a.jsonl", "{\"id\": 1}\n", 3);
    let error = failing(dir.path(), &["run"]);
    assert!(error.contains("cannot get credentials") && error.contains(&role.arn), "{error}");
    assert!(!error.contains("guessed-id"), "{error}");
}

#[test]
fn on_s3_a_bucket_that_does_not_exist_is_named_by_check_and_by_the_run() {
    let server = S3Server::start();
    let dir = people_on_s3(&server, &own_keys(), "");
    put(dir.path(), "a.jsonl", "{\"id\": 1}\n", 3);
    for args in [&["check"][..], &["run"][..]] {
        let error = failing(dir.path(), args);
        assert!(error.contains("does not exist"), "{error}");
    }
}

#[test]
fn on_s3_a_store_without_conditional_writes_is_refused_by_check_and_by_the_first_run() {
    let server = S3Server::start();
    server.create_bucket(LAKE);
    server.ignore_conditional_writes();
    let dir = people_on_s3(&server, &own_keys(), "");
    put(dir.path(), "a.jsonl", "{\"id\": 1}\n", 3);
    for args in [&["check"][..], &["run"][..]] {
        let error = failing(dir.path(), args);
        assert!(error.contains("does not honour conditional writes"), "{error}");
    }
    assert_eq!(server.keys(LAKE, "tables/people/"), Vec::<String>::new(), "nothing written");
}

#[test]
fn on_s3_a_killed_run_is_finished_by_the_next_with_every_row_once() {
    let server = S3Server::start();
    server.create_bucket(LAKE);
    let dir = people_on_s3(&server, &own_keys(), "commit_objects = 10");
    let log = "tables/people/people/_delta_log/";
    let commits = || server.keys(LAKE, log).iter().filter(|k| k.ends_with(".json")).count();
    killed_run_is_finished_by_the_next(dir.path(), commits, |sql| s3_rows(&server, sql));
}

#[test]
fn partition_by_writes_a_folder_per_value_that_merge_new_columns_rollback_and_optimize_keep() {
    let dir = people("mode = \"merge\", key = [\"id\"], partition_by = [\"country\"]");
    put(
        dir.path(),
        "a.jsonl",
        "{\"id\": 1, \"country\": \"NO\", \"name\": \"Ann\"}\n{\"id\": 2, \"country\": \"SE\", \"name\": \"Bob\"}\n{\"id\": 3, \"name\": \"Cy\"}\n",
        3,
    );
    expect(dir.path(), &["run"], 0);
    let folders = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(table(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("country="))
            .collect();
        names.sort();
        names
    };
    assert_eq!(folders(dir.path()), ["country=NO", "country=SE", "country=__HIVE_DEFAULT_PARTITION__"]);
    let before_age = "SELECT id, country, name FROM people ORDER BY id";
    let all = "SELECT id, country, name, age FROM people ORDER BY id";
    let first = ["1\tNO\tAnn", "2\tSE\tBob", "3\t\tCy"];
    assert_eq!(people_rows(dir.path(), before_age), first);

    // A new column, a changed row and a new one, merged on the key within and across partitions.
    put(
        dir.path(),
        "b.jsonl",
        "{\"id\": 2, \"country\": \"SE\", \"name\": \"Bo\", \"age\": 30}\n{\"id\": 4, \"country\": \"NO\", \"name\": \"Di\"}\n",
        2,
    );
    expect(dir.path(), &["run"], 0);
    let second = ["1\tNO\tAnn\t", "2\tSE\tBo\t30", "3\t\tCy\t", "4\tNO\tDi\t"];
    assert_eq!(people_rows(dir.path(), all), second);

    expect(dir.path(), &["rollback", "People"], 0);
    assert_eq!(people_rows(dir.path(), before_age), first);
    expect(dir.path(), &["run"], 0);
    assert_eq!(people_rows(dir.path(), all), second);

    // Small files merge within their partition only.
    let out = expect(dir.path(), &["optimize", "People"], 0);
    assert!(out.contains("small files merged into"), "{out}");
    assert_eq!(people_rows(dir.path(), all), second);
    assert_eq!(folders(dir.path()), ["country=NO", "country=SE", "country=__HIVE_DEFAULT_PARTITION__"]);

    // The partitioning is fixed once the table is made.
    let config = std::fs::read_to_string(dir.path().join("connector.toml")).unwrap();
    std::fs::write(dir.path().join("connector.toml"), config.replace("[\"country\"]", "[\"name\"]")).unwrap();
    put(dir.path(), "c.jsonl", "{\"id\": 5, \"country\": \"NO\", \"name\": \"Ed\"}\n", 1);
    let out = sluice(dir.path(), &["run"]);
    let error = text(&out.stdout) + &text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{error}");
    assert!(
        error.contains("the Delta table is partitioned by [country] and `partition_by` says [name]"),
        "{error}"
    );
}
