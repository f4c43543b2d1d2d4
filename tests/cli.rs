//! `sluice parse` as a user runs it: output streams, exit statuses, configuration, and a custom plugin
//! built out of tree and loaded by path.

mod support;

use std::path::Path;
use std::process::{Command, Output};

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir)
        .env("SLUICE_CACHE_DIR", dir.join("cache"))
        .args(args)
        .output()
        .expect("running sluice")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn parse_prints_records_on_stdout_and_rejects_with_a_summary_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("people.csv"), "id,name\n1,Ann\n2\n3,\"Cy, Jr.\"\n").unwrap();
    let output = sluice(dir.path(), &["parse", "--format", "csv", "people.csv"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "{\"id\":\"1\",\"name\":\"Ann\"}\n{\"id\":\"3\",\"name\":\"Cy, Jr.\"}\n"
    );
    let stderr = text(&output.stderr);
    assert!(stderr.contains("rejected: people.csv line 3: expected 2 fields, found 1"), "{stderr}");
    assert!(stderr.contains("people.csv: 2 rows, 1 rejected, 28 bytes,"), "{stderr}");
}

#[test]
fn a_file_that_is_not_valid_json_exits_1_naming_plugin_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.json"), "[{\"a\": 1},\n{\"a\": }]").unwrap();
    let output = sluice(dir.path(), &["parse", "--format", "json", "bad.json"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(text(&output.stdout), "{\"a\":1}\n", "records before the error are kept");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("plugin `json` cannot read `bad.json` at line 2: invalid JSON"), "{stderr}");
}

#[test]
fn usage_and_configuration_errors_exit_2_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), "a\n1\n").unwrap();
    std::fs::write(
        dir.path().join("bad-name.toml"),
        "[dataflows.9lives]\nsource = { type = \"local\", path = \".\" }\nformat = { plugin = \"csv\" }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("typo.toml"),
        "[dataflows.Orders.source]\ntype = \"local\"\npath = \".\"\n[dataflows.Orders.format]\nplugn = \"csv\"\n",
    )
    .unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["parse", "--format", "feather", "a.csv"],
            "unknown plugin `feather`: the bundled ones are csv, tsv, json, jsonl, parquet, xml, avro, xlsx",
        ),
        (&["parse", "--format", "csv", "missing.csv"], "cannot open missing.csv"),
        (&["parse", "--format", "csv", "-o", "novalue", "a.csv"], "`novalue` is not KEY=VALUE"),
        (&["parse", "a.csv"], "--format"),
        (&["parse", "--format", "csv", "-o", "delimitr=;", "a.csv"], "unknown option(s): delimitr"),
        (
            &["--config", "bad-name.toml", "parse", "--dataflow", "x", "a.csv"],
            "starts with a letter and holds letters and digits only",
        ),
        (&["--config", "typo.toml", "parse", "--dataflow", "Orders", "a.csv"], "line 5"),
        (&["--config", "nowhere.toml", "parse", "--format", "csv", "a.csv"], "cannot read nowhere.toml"),
    ];
    for (args, expected) in cases {
        let output = sluice(dir.path(), args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn a_dataflow_reads_files_with_its_plugin_and_options() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("list.json"),
        r#"{"object":"list","data":[{"id":"prod_1","active":true}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("connector.toml"),
        "[dataflows.Products.source]\ntype = \"local\"\npath = \".\"\n\n\
         [dataflows.Products.format]\nplugin = \"json\"\noptions = { pointer = \"/data\" }\n",
    )
    .unwrap();
    let output = sluice(dir.path(), &["parse", "--dataflow", "Products", "list.json"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "{\"id\":\"prod_1\",\"active\":true}\n");
}

/// The `sluice` binary was built by cargo before this test runs; the plugin is built here, afterwards,
/// out of tree, and named only by path in the configuration.
#[test]
fn a_custom_plugin_built_out_of_tree_runs_by_path_without_rebuilding_the_host() {
    let wasm = support::build_guests("examples/fixedwidth").join("fixedwidth.wasm");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("connector.toml"),
        format!(
            "[plugins.fixedwidth]\npath = \"{}\"\nmemory_limit_mib = 32\ncall_timeout = \"2s\"\n\n\
             [dataflows.Ledger]\nsource = {{ type = \"local\", path = \"data\" }}\n\
             format = {{ plugin = \"fixedwidth\", options = {{ fields = [\"id:4\", \"name:10\", \"amount:8\"] }} }}\n",
            wasm.display()
        ),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/ledger.txt"), "0001Ann       12.50\n0002Bo\n0003Zoë          7\n")
        .unwrap();
    let output = sluice(dir.path(), &["parse", "--dataflow", "Ledger", "data/ledger.txt"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        text(&output.stdout),
        "{\"id\":\"0001\",\"name\":\"Ann\",\"amount\":\"12.50\"}\n{\"id\":\"0003\",\"name\":\"Zoë\",\"amount\":\"7\"}\n"
    );
    assert!(
        stderr.contains("rejected: data/ledger.txt line 2: line has 6 characters, fields need at least 14"),
        "{stderr}"
    );
    assert!(stderr.contains("via plugin `fixedwidth`"), "{stderr}");

    // The same plugin in a dataflow's run: its records become rows of a table.
    let run = sluice(dir.path(), &["run", "Ledger"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert!(
        text(&run.stdout).contains("Ledger: succeeded — 1 objects, 2 rows, 1 rejected"),
        "{}",
        text(&run.stdout)
    );
    let tables = rusqlite::Connection::open(dir.path().join("sluice.db")).unwrap();
    let names: Vec<String> = tables
        .prepare("SELECT name FROM ledger ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(names, ["Ann", "Zoë"]);
}

#[test]
fn plugin_test_runs_a_sample_through_a_format_plugin_or_a_template() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("catalog.csv"), "sku,title\nmug,Mug\n,No sku\n").unwrap();
    let csv = support::daemon::bundled_wasm("sluice_csv");
    let output = sluice(
        dir.path(),
        &["plugin", "test", csv.to_str().unwrap(), "catalog.csv", "-o", "null_values=[\"\"]"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "{\"sku\":\"mug\",\"title\":\"Mug\"}\n{\"sku\":null,\"title\":\"No sku\"}\n"
    );

    // A template maps what the bundled format of the sample's extension reads; its rejects go to stderr.
    let map = support::daemon::bundled_wasm("sluice_map");
    let fields =
        "fields={\"id\":\"sku\",\"name\":\"title\",\"metadata.sku\":{\"column\":\"sku\",\"required\":true}}";
    let output = sluice(
        dir.path(),
        &["plugin", "test", map.to_str().unwrap(), "catalog.csv", "-o", "object=products", "-o", fields],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "{\"id\":\"mug\",\"metadata.sku\":\"mug\",\"name\":\"Mug\"}\n");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("line 3: field `metadata.sku` (column `sku`) is required and has no value"),
        "{stderr}"
    );
    assert!(stderr.contains("via plugin `csv` and template `sluice_map`"), "{stderr}");

    let output = sluice(dir.path(), &["plugin", "test", map.to_str().unwrap(), "catalog.txt"]);
    assert_eq!(output.status.code(), Some(2), "a sample that is not there");
}

/// Runs cargo in `dir` for a plugin crate, with a target folder kept under the repository's `target/`.
fn cargo(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO"))
        .current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", support::root().join("target").join("plugin-new"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("running cargo")
}

#[test]
fn plugin_new_makes_a_format_plugin_a_ranged_one_and_a_template_that_pass_their_tests_build_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = support::root().join("target/plugin-new/wasm32-wasip2/release");
    std::fs::write(dir.path().join("sample.txt"), "id=1;name=Ann\nid=2;oops\n").unwrap();
    std::fs::write(dir.path().join("sample.csv"), "sku,title\nmug,Mug\n,No sku\n").unwrap();
    // Fixed-width records of 8 bytes and a trailer counting them, the third not UTF-8.
    let mut fixed = b"alpha   beta    \xff\xfe      ".to_vec();
    fixed.extend(3u64.to_le_bytes());
    std::fs::write(dir.path().join("sample.fixed"), fixed).unwrap();
    for (name, kind, sample, options, records, reject) in [
        (
            "fixed-width",
            "ranged-format",
            "sample.fixed",
            vec![],
            "{\"value\":\"alpha\"}\n{\"value\":\"beta\"}\n",
            "line 3: invalid UTF-8",
        ),
        (
            "keyvalues",
            "format",
            "sample.txt",
            vec![],
            "{\"id\":\"1\",\"name\":\"Ann\"}\n",
            "line 2: `oops` is not key=value",
        ),
        (
            "keep-fields",
            "template",
            "sample.csv",
            vec!["-o", "required=sku", "-o", "prefix=metadata."],
            "{\"metadata.sku\":\"mug\",\"metadata.title\":\"Mug\"}\n",
            "line 3: column `sku` is empty",
        ),
    ] {
        let made = sluice(dir.path(), &["plugin", "new", name, "--kind", kind]);
        assert_eq!(made.status.code(), Some(0), "{}", text(&made.stderr));
        let crate_dir = dir.path().join(name);
        let tested = cargo(&crate_dir, &["test"]);
        assert!(tested.status.success(), "{name}'s own tests:\n{}", text(&tested.stderr));
        assert!(text(&tested.stdout).contains("test result: ok. 2 passed"), "{}", text(&tested.stdout));
        let built = cargo(&crate_dir, &["build", "--release", "--target", "wasm32-wasip2"]);
        assert!(built.status.success(), "{name} builds:\n{}", text(&built.stderr));
        let plugin = wasm.join(format!("{}.wasm", name.replace('-', "_")));
        let inspected = sluice(dir.path(), &["plugin", "inspect", plugin.to_str().unwrap()]);
        let about = format!("plugin:    {name} 0.1.0: A {kind} plugin made by `sluice plugin new`");
        assert!(text(&inspected.stdout).contains(&about), "{}", text(&inspected.stdout));
        let mut args = vec!["plugin", "test", plugin.to_str().unwrap(), sample];
        args.extend(options);
        let ran = sluice(dir.path(), &args);
        assert_eq!(ran.status.code(), Some(0), "{}", text(&ran.stderr));
        assert_eq!(text(&ran.stdout), records);
        assert!(text(&ran.stderr).contains(reject), "{}", text(&ran.stderr));
    }
    let again = sluice(dir.path(), &["plugin", "new", "keyvalues", "--kind", "format"]);
    assert_eq!(again.status.code(), Some(2), "a folder that exists is not overwritten");
    let bad = sluice(dir.path(), &["plugin", "new", "Bad Name", "--kind", "format"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// Builds an example plugin with its script into `target/plugins/WASM`, and checks that `sluice plugin
/// inspect` (run in `dir`) finds the `world` in it and no import but Sluice's contract.
fn built_example(dir: &Path, script: &str, wasm: &str, world: &str) -> std::path::PathBuf {
    let wasm = support::root().join("target/plugins").join(wasm);
    let built = Command::new("bash")
        .arg(support::root().join(script))
        .arg(&wasm)
        .output()
        .expect("running the build script");
    assert!(
        built.status.success(),
        "{script} (needs python3 and PyPI, or node and npm):\n{}",
        text(&built.stderr)
    );
    let inspected = sluice(dir, &["plugin", "inspect", wasm.to_str().unwrap()]);
    let stdout = text(&inspected.stdout);
    assert_eq!(inspected.status.code(), Some(0), "{}", text(&inspected.stderr));
    let contract = sluice::plugin::CONTRACT_VERSION;
    assert!(stdout.contains(&format!("world:     {world} (sluice:plugin@{contract};")), "{stdout}");
    assert!(
        stdout.contains(&format!("imports:   1\n  sluice:plugin/types@{contract}")),
        "nothing of WASI: {stdout}"
    );
    wasm
}

/// Writes `contents` to `data/FILE` in `dir` and `config` (whose dataflow reads `data`) to its
/// `connector.toml`, runs `sluice run`, checks it succeeded with `summary` in its output, and opens the
/// tables it wrote.
fn run_in_dataflow(
    dir: &Path,
    file: &str,
    contents: &str,
    config: String,
    summary: &str,
) -> rusqlite::Connection {
    std::fs::create_dir(dir.join("data")).unwrap();
    std::fs::write(dir.join("data").join(file), contents).unwrap();
    std::fs::write(dir.join("connector.toml"), config).unwrap();
    let ran = sluice(dir, &["run"]);
    assert_eq!(ran.status.code(), Some(0), "{}{}", text(&ran.stdout), text(&ran.stderr));
    assert!(text(&ran.stdout).contains(summary), "{}", text(&ran.stdout));
    rusqlite::Connection::open(dir.join("sluice.db")).unwrap()
}

#[test]
fn a_format_plugin_written_in_python_runs_in_a_dataflow_by_path() {
    // Built with componentize-py from PyPI (installed under target/ by the script the first time).
    let dir = tempfile::tempdir().unwrap();
    let wasm =
        built_example(dir.path(), "examples/python-keyvalues/build.sh", "python_keyvalues.wasm", "format");
    let config = format!(
        "[plugins.pykv]\npath = \"{}\"\n\n[dataflows.People]\nsource = {{ type = \"local\", path = \"data\" }}\nformat = {{ plugin = \"pykv\" }}\n",
        wasm.display()
    );
    let people = "id=1;name=Ann\nid=2;oops\n\nid=3;name=Cy;city=Oslo\n";
    let summary = "People: succeeded — 1 objects, 2 rows, 1 rejected";
    let db = run_in_dataflow(dir.path(), "people.kv", people, config, summary);
    let rows: Vec<(String, Option<String>, i64)> = db
        .prepare("SELECT name, city, _sluice_line FROM people ORDER BY _sluice_line")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows, vec![("Ann".into(), None, 1), ("Cy".into(), Some("Oslo".into()), 4)]);
    let reason: String =
        db.query_row("SELECT reason FROM _sluice_rejects WHERE line = 2", [], |r| r.get(0)).unwrap();
    assert_eq!(reason, "`oops` is not key=value");
}

#[test]
fn a_template_written_in_javascript_runs_in_a_dataflow_by_path() {
    // Built with componentize-js from npm (installed beside the example by the script the first time).
    let dir = tempfile::tempdir().unwrap();
    let wasm = built_example(dir.path(), "examples/js-keep/build.sh", "js_keep.wasm", "template");
    let config = format!(
        "[plugins.keep]\npath = \"{}\"\n\n[dataflows.Catalog]\nsource = {{ type = \"local\", path = \"data\" }}\nformat = {{ plugin = \"csv\" }}\n\
         template = {{ plugin = \"keep\", options = {{ fields = [\"sku\", \"title\"], prefix = \"item_\", required = \"sku\" }} }}\n",
        wasm.display()
    );
    let catalog = "sku,title,cost\nmug,Mug,3\n,No sku,1\ncup,Cup,2\n";
    let summary = "Catalog: succeeded — 1 objects, 2 rows, 1 rejected";
    let db = run_in_dataflow(dir.path(), "catalog.csv", catalog, config, summary);
    let rows: Vec<(String, String, i64)> = db
        .prepare("SELECT item_sku, item_title, _sluice_line FROM catalog ORDER BY _sluice_line")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows, vec![("mug".into(), "Mug".into(), 2), ("cup".into(), "Cup".into(), 4)]);
    let (reason, raw): (String, String) = db
        .query_row("SELECT reason, raw FROM _sluice_rejects WHERE line = 3", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(reason, "column `sku` is empty");
    assert_eq!(raw, "{\"sku\":\"\",\"title\":\"No sku\",\"cost\":\"1\"}");
}
