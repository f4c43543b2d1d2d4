//! `sluice preview` and the configuration mistakes users make, as they meet them in the terminal. A
//! dataflow's runs, rollback and removal are in `lifecycle.rs`, on both databases.

mod support;

use sluice_testkit::s3::SECRET_KEY;
use std::path::Path;
use std::process::{Command, Output};

fn sluice(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .current_dir(dir)
        .env("SLUICE_CACHE_DIR", support::root().join("target").join("test-plugin-cache"))
        // The S3 tests' configurations read their secret key from the environment.
        .env("TEST_S3_SECRET", SECRET_KEY);
    command
}

fn run(dir: &Path, args: &[&str]) -> Output {
    support::output(sluice(dir).args(args))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn preview_lists_what_the_next_run_imports_and_its_first_records_and_writes_nothing() {
    let dir = support::example();
    let output = run(dir.path(), &["preview", "Orders", "--records", "2"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("Orders: 2 objects listed, 2 in the window"), "{stdout}");
    assert!(stdout.contains("orders/orders-2026-11.csv") && stdout.contains("new"), "{stdout}");
    assert_eq!(stdout.matches("{\"id\":").count(), 2, "{stdout}");
    assert!(!dir.path().join("sluice-state.db").exists() && !dir.path().join("sluice.db").exists());

    run(dir.path(), &["run", "Orders"]);
    let after = text(&run(dir.path(), &["preview", "Orders"]).stdout);
    assert!(after.contains("0 to import") && after.matches("already imported").count() == 2, "{after}");
}

fn config_error(toml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("connector.toml"), toml).unwrap();
    let output = run(dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    text(&output.stderr)
}

const LOCAL: &str = "source = { type = \"local\", path = \"data\" }\n";

#[test]
fn a_table_purpose_outside_the_list_is_refused_naming_the_line_and_the_choices() {
    let bad = config_error(&format!(
        "[dataflows.Audit]\n{LOCAL}format = {{ plugin = \"csv\" }}\nsink = {{ purpose = \"marketing\", kind = \"metadata\" }}\n"
    ));
    assert!(bad.contains("line 4") && bad.contains("marketing") && bad.contains("customer-360"), "{bad}");
}

#[test]
fn configuration_mistakes_name_the_dataflow_the_key_and_the_line() {
    let unknown_key = config_error(&format!(
        "[dataflows.Orders]\n{LOCAL}format = {{ plugin = \"csv\" }}\n\n[dataflows.Orders.sink]\ntable = \"orders\"\ntabel = \"x\"\n"
    ));
    for part in ["connector.toml line 7", "dataflows.Orders.sink.tabel", "unknown field `tabel`"] {
        assert!(unknown_key.contains(part), "`{part}` missing from: {unknown_key}");
    }

    let unknown_plugin =
        config_error(&format!("[dataflows.Orders]\n{LOCAL}format = {{ plugin = \"feather\" }}\n"));
    for part in [
        "line 3",
        "dataflows.Orders.format.plugin",
        "unknown plugin `feather`",
        "csv, tsv, json, jsonl, parquet",
    ] {
        assert!(unknown_plugin.contains(part), "`{part}` missing from: {unknown_plugin}");
    }

    let bad_name =
        config_error(&format!("[dataflows.Orders-2024]\n{LOCAL}format = {{ plugin = \"csv\" }}\n"));
    for part in ["line 1", "`Orders-2024`", "starts with a letter and holds letters and digits only"] {
        assert!(bad_name.contains(part), "`{part}` missing from: {bad_name}");
    }

    let missing_env = config_error(
        "[dataflows.Orders]\nformat = { plugin = \"csv\" }\n[dataflows.Orders.source]\ntype = \"s3\"\nbucket = \"b\"\nsecret_access_key = \"${SLUICE_TEST_UNSET_SECRET}\"\naccess_key_id = \"x\"\n",
    );
    for part in
        ["line 6", "dataflows.Orders.source.secret_access_key", "`SLUICE_TEST_UNSET_SECRET` is not set"]
    {
        assert!(missing_env.contains(part), "`{part}` missing from: {missing_env}");
    }

    let inline_env = config_error(
        "[dataflows.Orders]\nformat = { plugin = \"csv\" }\nsource = { type = \"s3\", bucket = \"b\", access_key_id = \"x\", secret_access_key = \"${SLUICE_TEST_UNSET_SECRET}\" }\n",
    );
    assert!(inline_env.contains("line 3, `dataflows.Orders.source.secret_access_key`"), "{inline_env}");

    let bad_schedule = config_error(&format!(
        "[dataflows.Orders]\n{LOCAL}format = {{ plugin = \"csv\" }}\nschedule = \"hourly\"\n"
    ));
    assert!(bad_schedule.contains("line 4") && bad_schedule.contains("schedule `hourly`"), "{bad_schedule}");

    let same_but_case = config_error(&format!(
        "[dataflows.Orders]\n{LOCAL}format = {{ plugin = \"csv\" }}\n[dataflows.orders]\n{LOCAL}format = {{ plugin = \"csv\" }}\n"
    ));
    assert!(same_but_case.contains("differ only in case"), "{same_but_case}");

    let bad_source =
        config_error("[dataflows.Orders]\nsource = { type = \"ftp\" }\nformat = { plugin = \"csv\" }\n");
    assert!(bad_source.contains("line 2") && bad_source.contains("ftp"), "{bad_source}");

    let no_dataflow = run(tempfile::tempdir().unwrap().path(), &["run"]);
    assert_eq!(no_dataflow.status.code(), Some(2));
    assert!(text(&no_dataflow.stderr).contains("no connector.toml"), "{}", text(&no_dataflow.stderr));
}

#[test]
fn a_dataflow_that_is_not_configured_is_named_with_those_that_are() {
    let dir = support::example();
    let output = run(dir.path(), &["run", "Refunds"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr)
            .contains("no dataflow `Refunds`; the dataflows are: Customers, Orders, Products")
    );
}

#[test]
fn a_source_of_more_than_1000_objects_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    for n in 0..1_001 {
        std::fs::write(dir.path().join(format!("data/{n}.csv")), "id\n1\n").unwrap();
    }
    std::fs::write(
        dir.path().join("connector.toml"),
        "[dataflows.Many]\nsource = { type = \"local\", path = \"data\" }\nformat = { plugin = \"csv\" }\n",
    )
    .unwrap();
    let output = run(dir.path(), &["preview", "Many", "--records", "1"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("holds more than 1000 objects and every run lists them all"), "{stderr}");
    assert!(text(&output.stdout).contains("1001 objects listed"), "{}", text(&output.stdout));
}

#[test]
fn check_proves_plugins_sources_and_databases_before_a_deploy_and_names_what_fails() {
    let dir = support::example();
    let output = run(dir.path(), &["check"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", text(&output.stderr));
    for line in [
        "ok    configuration",
        "ok    Orders: format plugin `csv`: loaded",
        "ok    Orders: source: local:examples/data/orders/ listed: 2 objects on the first page",
        "ok    Products: format plugin `json`",
    ] {
        assert!(stdout.contains(line), "{line} in:\n{stdout}");
    }
    assert!(!dir.path().join("sluice-state.db").exists(), "check writes nothing");

    // A folder that is not there, a plugin file that is not a component, a database that is down, and a
    // misspelled format option.
    std::fs::write(dir.path().join("broken.wasm"), b"not wasm").unwrap();
    let config = std::fs::read_to_string(dir.path().join("connector.toml")).unwrap()
        + "\n[plugins.broken]\npath = \"broken.wasm\"\n\n[dataflows.Gone]\nsource = { type = \"local\", path = \"not-mounted\" }\nformat = { plugin = \"broken\" }\nsink = { url = \"postgres://postgres@127.0.0.1:1/test\" }\n\n\
           [dataflows.Typo]\nsource = { type = \"local\", path = \"examples/data\", prefix = \"orders/\" }\nformat = { plugin = \"csv\", options = { delimeter = \";\" } }\n";
    std::fs::write(dir.path().join("connector.toml"), config).unwrap();
    let output = run(dir.path(), &["check"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  Gone: format plugin `broken`: plugin `broken` could not be loaded: it is not WebAssembly at all"),
        "{stdout}"
    );
    assert!(stdout.contains("FAIL  Gone: source: listing local:not-mounted"), "{stdout}");
    assert!(
        stdout.contains("FAIL  Gone: sink postgres://postgres@127.0.0.1:1/test: cannot connect"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL  Typo: format plugin `csv`: ")
            && stdout.contains("unknown option(s): delimeter"),
        "{stdout}"
    );
    assert!(stdout.contains("ok    Orders: source"), "the other dataflows are still checked: {stdout}");
    assert!(text(&output.stderr).contains("4 checks failed"), "{}", text(&output.stderr));

    std::fs::write(dir.path().join("connector.toml"), "[dataflows.Bad]\nsource = { type = \"local\" }\n")
        .unwrap();
    assert_eq!(run(dir.path(), &["check"]).status.code(), Some(2), "an invalid configuration");
}

#[test]
fn a_custom_source_or_sink_in_connector_toml_is_refused_by_the_binary_naming_it() {
    let missing_name = config_error(&format!(
        "[dataflows.Orders]\n{LOCAL}format = {{ plugin = \"csv\" }}\nsink = {{ type = \"custom\" }}\n"
    ));
    assert!(missing_name.contains("dataflows.Orders.sink.name"), "{missing_name}");
    assert!(
        missing_name.contains("a custom sink needs the name its program registered it under"),
        "{missing_name}"
    );

    // Valid as configuration, but only an embedding program registers custom sources and sinks.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("connector.toml"),
        "[dataflows.Orders]\nsource = { type = \"custom\", name = \"inbox\" }\nformat = { plugin = \"csv\" }\n\n\
         [dataflows.Audit]\nsource = { type = \"local\", path = \".\" }\nformat = { plugin = \"csv\" }\n\
         sink = { type = \"custom\", name = \"warehouse\" }\n",
    )
    .unwrap();
    let source = run(dir.path(), &["run", "Orders"]);
    let (stdout, stderr) = (text(&source.stdout), text(&source.stderr));
    assert_eq!(source.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.starts_with("Orders: failed — 0 objects"), "{stdout}");
    assert!(
        stderr.contains("dataflow `Orders`: custom source `inbox`: no source is registered as `inbox` (none is registered)"),
        "{stderr}"
    );
    let sink = run(dir.path(), &["run", "Audit"]);
    let stderr = text(&sink.stderr);
    assert_ne!(sink.status.code(), Some(0));
    assert!(stderr.contains("dataflow `Audit`"), "{stderr}");
    assert!(stderr.contains("no sink is registered as `warehouse` (none is registered)"), "{stderr}");
    assert!(stderr.contains("the `sluice` binary registers none"), "{stderr}");
}
