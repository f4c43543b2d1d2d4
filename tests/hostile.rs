//! Hostile plugins, each a small component under tests/guests/: each gets a clear error within its limit,
//! the host survives, and the next file still parses. Also plugins built against other versions of the
//! contract than this host's 1.4.0: an earlier minor runs, another major is refused naming both.

mod support;

use sluice::plugin::{Limits, PluginError, RangeRead};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::{bundled, load_file, parse};

fn guests() -> &'static PathBuf {
    static GUESTS: OnceLock<PathBuf> = OnceLock::new();
    GUESTS.get_or_init(|| support::build_guests("tests/guests"))
}

const LIMITS: Limits = Limits { memory: 64 << 20, call_timeout: Duration::from_millis(500) };

fn run_hostile(guest: &str) -> (PluginError, Duration) {
    let plugin =
        load_file(guest, guests().join(format!("{guest}.wasm")), LIMITS).expect("hostile plugins load");
    let started = Instant::now();
    let outcome = parse(&plugin, &[], b"id,name\n1,Ann\n");
    let elapsed = started.elapsed();
    // The host survived: the bundled parser still reads a file, and so would the hostile plugin again
    // (every file gets a fresh instance).
    let good = parse(&bundled("csv"), &[], b"a\n1\n");
    assert_eq!(good.rows.len(), 1);
    assert!(parse(&plugin, &[], b"again").error.is_some());
    (outcome.error.expect("a hostile plugin fails"), elapsed)
}

#[test]
fn a_plugin_that_imports_the_filesystem_is_refused_at_load() {
    let path = guests().join("reads_host_files.wasm");
    let error = load_file("reads_host_files", path, LIMITS).err().expect("refused");
    assert!(matches!(error, PluginError::Load { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with("plugin `reads_host_files` could not be loaded: it imports `wasi:filesystem/"),
        "{message}"
    );
    assert!(message.contains("plugins get no file or network access"), "{message}");
}

#[test]
fn a_plugin_sees_no_environment_or_arguments() {
    let (error, _) = run_hostile("reads_environment");
    assert!(matches!(error, PluginError::Format { .. }), "{error}");
    assert!(error.to_string().ends_with("0 environment variables []; 0 arguments"), "{error}");
}

#[test]
fn a_plugin_that_loops_forever_is_stopped_at_its_time_limit() {
    let (error, elapsed) = run_hostile("loops_forever");
    assert!(matches!(error, PluginError::Timeout { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("plugin `loops_forever` ran past its time limit of 500ms on `test-object`"),
        "{error}"
    );
    assert!(elapsed >= LIMITS.call_timeout && elapsed < LIMITS.call_timeout * 4, "stopped after {elapsed:?}");
}

#[test]
fn a_plugin_that_allocates_forever_is_stopped_at_its_memory_limit() {
    let (error, _) = run_hostile("allocates_forever");
    assert!(matches!(error, PluginError::MemoryLimit { limit, .. } if limit == 64 << 20), "{error}");
    assert!(error.to_string().contains("reached its memory limit of 64 MiB on `test-object`"), "{error}");
}

#[test]
fn a_plugin_that_traps_fails_that_file_with_its_panic_message() {
    let (error, _) = run_hostile("traps");
    let PluginError::Trap { plugin, object, stderr, .. } = &error else { panic!("{error}") };
    assert_eq!((plugin.as_str(), object.as_str()), ("traps", "test-object"));
    assert!(
        stderr.as_deref().unwrap_or_default().contains("this plugin always fails (fed 14 bytes)"),
        "{error}"
    );
}

#[test]
fn a_core_module_or_garbage_is_refused_at_load_with_the_plugin_named() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"this is not wasm").unwrap();
    let module = dir.path().join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    for (name, path) in [("garbage", garbage), ("module", module), ("missing", dir.path().join("none.wasm"))]
    {
        let error = load_file(name, path, Limits::default()).err().expect("refused");
        assert!(matches!(error, PluginError::Load { .. }), "{error}");
        assert!(error.to_string().starts_with(&format!("plugin `{name}` could not be loaded")), "{error}");
        if name == "module" {
            assert!(error.to_string().contains("a core WebAssembly module, not a component"), "{error}");
        }
    }
}

/// `sluice plugin inspect FILE`: its exit status, stdout and stderr.
fn inspect(file: &std::path::Path) -> (Option<i32>, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["plugin", "inspect"])
        .arg(file)
        .env("SLUICE_CACHE_DIR", support::root().join("target").join("test-plugin-cache"))
        .output()
        .expect("running sluice");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code(), text(&output.stdout), text(&output.stderr))
}

#[test]
fn plugin_inspect_tells_the_world_and_contract_and_refuses_forbidden_imports_and_core_modules() {
    let (code, stdout, stderr) = inspect(&support::daemon::bundled_wasm("sluice_csv"));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("world:     typed-format (sluice:plugin@1.4.0; this Sluice implements 1.4.0)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("plugin:    sluice-csv 0.1.0: CSV and TSV files (RFC 4180 quoting"),
        "what the SDK exports from the plugin's Cargo.toml: {stdout}"
    );
    assert!(
        stdout.contains("exports:   sluice:plugin/about@1.4.0, sluice:plugin/typed-parser@1.4.0"),
        "{stdout}"
    );
    assert!(stdout.contains("compiles:  in ") || stdout.contains("compiles:  cached already"), "{stdout}");
    assert!(!stdout.contains("REFUSED"), "{stdout}");

    let (code, stdout, _) = inspect(&guests().join("full_name.wasm"));
    assert_eq!(code, Some(0));
    assert!(stdout.contains("world:     template (sluice:plugin@1.4.0;"), "{stdout}");
    assert!(stdout.contains("plugin:    full_name 0.1.0\n"), "no description in its Cargo.toml: {stdout}");

    let (code, stdout, stderr) = inspect(&guests().join("reads_host_files.wasm"));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.lines().any(|l| l.contains("wasi:filesystem/") && l.ends_with("REFUSED")), "{stdout}");
    assert!(stderr.contains("Sluice will not load it: it imports `wasi:filesystem/"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let (code, _, stderr) = inspect(&module);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("it is a core WebAssembly module, not a component"), "{stderr}");
}

#[test]
fn a_plugin_built_against_an_earlier_minor_of_the_contract_loads_and_runs() {
    let path = guests().join("contract_1_0.wasm");
    let plugin =
        load_file("contract_1_0", path.clone(), LIMITS).expect("a 1.0.0 plugin loads on a 1.4.0 host");
    let outcome = parse(&plugin, &[], b"first\nsecond\nthird");
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    assert_eq!(
        outcome.rows,
        ["first", "second", "third"].map(|line| serde_json::json!({ "line": line })),
        "records as the plugin made them"
    );
    assert_eq!(outcome.lines, [1, 2, 3]);

    let (code, stdout, stderr) = inspect(&path);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("world:     format (sluice:plugin@1.0.0; this Sluice implements 1.4.0)"),
        "{stdout}"
    );
    assert!(stdout.contains("plugin:    says nothing of itself (it exports no `about`"), "{stdout}");
}

#[test]
fn a_plugin_built_against_another_major_of_the_contract_is_refused_naming_both_versions() {
    let path = guests().join("contract_2_0.wasm");
    let error = load_file("future", path.clone(), LIMITS).err().expect("a 2.0.0 plugin is refused");
    assert!(matches!(error, PluginError::Load { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with(
            "plugin `future` could not be loaded: it was built against contract sluice:plugin@2.0.0, \
             and this Sluice implements sluice:plugin@1.4.0"
        ),
        "{message}"
    );
    assert!(message.contains("rebuild the plugin against 1.x"), "{message}");

    let (code, stdout, stderr) = inspect(&path);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("world:     format (sluice:plugin@2.0.0; this Sluice implements 1.4.0)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("plugin:"),
        "nothing of a refused plugin is run, not even its `about`: {stdout}"
    );
    assert!(
        stderr.contains("Sluice will not load it: it was built against contract sluice:plugin@2.0.0"),
        "{stderr}"
    );
}

/// A file held in memory, read by ranges.
struct InMemory(Vec<u8>);

impl RangeRead for InMemory {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&mut self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        Ok(self.0[offset as usize..offset as usize + len].to_vec())
    }
}

#[test]
fn a_ranged_plugin_that_reads_out_of_range_or_asks_for_4_gib_is_refused_and_contained() {
    let plugin = load_file("reads_out_of_range", guests().join("reads_out_of_range.wasm"), LIMITS)
        .expect("a ranged plugin loads");
    assert!(plugin.reads_by_range());
    let file = b"PAR1 sixteen bytes".to_vec();
    let read = |probe: &str| -> Result<Vec<sluice::plugin::Parsed>, PluginError> {
        let options = [("probe".to_string(), probe.to_string())];
        let mut parse = plugin.open_ranged("test-object", &options, Box::new(InMemory(file.clone())))?;
        let mut parsed = Vec::new();
        while let Some(next) = parse.next_records()? {
            parsed.push(next);
        }
        Ok(parsed)
    };

    // Each refusal reaches the plugin as an error it can report, before anything is read.
    for (probe, refusal) in [
        ("past-end", "the host refused: bytes 17..27 are past the end of the file (18 bytes)"),
        ("huge", "the host refused: a read of 4294967295 bytes is more than the 64 MiB one read may take"),
        ("wraps", "the host refused: bytes 18446744073709551614..18446744073709551618 are past the end"),
    ] {
        let error = read(probe).err().unwrap_or_else(|| panic!("probe {probe} was not refused"));
        assert!(matches!(error, PluginError::Format { .. }), "{probe}: {error}");
        let message = error.to_string();
        assert!(message.starts_with("plugin `reads_out_of_range` cannot read `test-object`: "), "{message}");
        assert!(message.contains(refusal), "{probe}: {message}");
    }
    // A plugin that trusts a refused read crashes, alone.
    let error = read("unchecked").expect_err("the plugin panics");
    let PluginError::Trap { stderr, .. } = &error else { panic!("{error}") };
    assert!(stderr.as_deref().unwrap_or_default().contains("the host gives what is asked"), "{error}");

    // The host is unharmed, and a read inside the file is served.
    let parsed = read("whole").expect("a read of the whole file is served");
    let rows: Vec<String> = parsed
        .iter()
        .flat_map(|p| &p.batches)
        .map(|b| {
            let mut line = Vec::new();
            b.write_json_row(0, &mut line).unwrap();
            String::from_utf8(line).unwrap()
        })
        .collect();
    assert_eq!(rows, ["{\"size\":18,\"first\":80}\n"]);
    assert_eq!(parse(&bundled("csv"), &[], b"a\n1\n").rows.len(), 1);
}

/// Every batch a ranged plugin handed over, each row as a JSON line.
fn rows_of(parsed: &[sluice::plugin::Parsed]) -> Vec<String> {
    let batches = parsed.iter().flat_map(|p| &p.batches);
    batches
        .flat_map(|b| {
            (0..b.num_rows()).map(move |row| {
                let mut line = Vec::new();
                b.write_json_row(row, &mut line).unwrap();
                String::from_utf8(line).unwrap()
            })
        })
        .collect()
}

#[test]
fn a_ranged_plugin_built_against_contract_1_2_still_loads_and_runs() {
    let path = guests().join("contract_1_2.wasm");
    let plugin =
        load_file("contract_1_2", path.clone(), LIMITS).expect("a 1.2.0 plugin loads on a 1.4.0 host");
    assert!(plugin.reads_by_range());
    let mut parse = plugin
        .open_ranged("lines.txt", &[], Box::new(InMemory(b"first\n\nthird\n".to_vec())))
        .expect("the 1.2.0 reader is made");
    let mut parsed = Vec::new();
    while let Some(next) = parse.next_records().expect("the 1.2.0 reader reads") {
        parsed.push(next);
    }
    assert_eq!(rows_of(&parsed), ["{\"line\":\"first\"}\n", "{\"line\":\"third\"}\n"]);
    assert_eq!(parsed[0].batches[0].line(1), 3);

    let (code, stdout, stderr) = inspect(&path);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("world:     ranged-format (sluice:plugin@1.2.0; this Sluice implements 1.4.0)"),
        "{stdout}"
    );
}

#[test]
fn a_typed_batch_out_of_its_bounds_is_refused_and_the_batch_before_it_kept() {
    let plugin = load_file("malformed_typed", guests().join("malformed_typed.wasm"), LIMITS)
        .expect("a typed ranged plugin loads");
    let (_, stdout, _) = inspect(&guests().join("malformed_typed.wasm"));
    assert!(stdout.contains("world:     typed-ranged-format (sluice:plugin@1.4.0;"), "{stdout}");
    for (probe, refusal) in [
        ("text-past-end", "column `note`: row 8: text offset 4096 is out of order or past the data"),
        ("text-backwards", "column `note`: row 5: text offset 4 is out of order or past the data"),
        ("short-bitmap", "column `n`: a validity bitmap of 1 bytes for 9 rows"),
        ("key-outside", "column `name`: row 8: key 2 is outside its dictionary of 2 values"),
    ] {
        let options = [("probe".to_string(), probe.to_string())];
        let mut parse = plugin.open_ranged("typed-object", &options, Box::new(InMemory(vec![0; 4]))).unwrap();
        let good = parse.next_records().expect("the first batch is well formed").expect("a first batch");
        assert_eq!(rows_of(&[good]).len(), 9, "{probe}");
        let error = parse.next_records().expect_err("the broken batch is refused");
        assert!(matches!(error, PluginError::Contract { .. }), "{probe}: {error}");
        let message = error.to_string();
        assert!(
            message.starts_with("plugin `malformed_typed` returned a malformed batch for `typed-object`: "),
            "{message}"
        );
        assert!(message.contains(refusal), "{probe}: {message}");
    }
    assert_eq!(parse(&bundled("csv"), &[], b"a\n1\n").rows.len(), 1);
}

#[test]
fn spans_out_of_range_backwards_overlapping_or_past_the_chunk_are_refused_and_the_batch_before_kept() {
    let plugin = load_file("malformed_spans", guests().join("malformed_spans.wasm"), LIMITS)
        .expect("a span parser loads");
    let (_, stdout, _) = inspect(&guests().join("malformed_spans.wasm"));
    assert!(stdout.contains("world:     typed-format (sluice:plugin@1.4.0;"), "{stdout}");
    let texts = |parsed: &sluice::plugin::Parsed| -> Vec<String> {
        let rows = rows_of(std::slice::from_ref(parsed));
        let text = |row: &String| serde_json::from_str::<serde_json::Value>(row).unwrap()["text"].to_string();
        rows.iter().map(|row| text(row).trim_matches('"').to_string()).collect()
    };
    // The second call's window is the 2 bytes the first kept ("lo"), then its own chunk.
    let mut kept = plugin.open("span-object", &[("probe".to_string(), "kept".to_string())]).unwrap();
    assert_eq!(texts(&kept.feed(b"hello").unwrap()), ["hello"]);
    assert_eq!(texts(&kept.feed(b"world").unwrap()), ["loworld"]);
    for (probe, refusal) in [
        ("past-window", "column `text`: row 0: span 0..8 runs past the 7 bytes of the window"),
        ("backwards", "column `text`: row 0: span 5..2 ends before it starts"),
        (
            "overlapping",
            "column `text`: row 1: span 3..7 of the window overlaps the span of an earlier row, which ends at 4",
        ),
        ("keep-too-much", "it keeps 100 bytes of a window of 7 bytes"),
    ] {
        let options = [("probe".to_string(), probe.to_string())];
        let mut broken = plugin.open("span-object", &options).unwrap();
        let good = broken.feed(b"hello").expect("the first batch is well formed");
        assert_eq!(texts(&good), ["hello"], "{probe}");
        let error = broken.feed(b"world").expect_err("the broken batch is refused");
        assert!(matches!(error, PluginError::Contract { .. }), "{probe}: {error}");
        let message = error.to_string();
        assert!(
            message.starts_with("plugin `malformed_spans` returned a malformed batch for `span-object`: "),
            "{message}"
        );
        assert!(message.ends_with(refusal), "{probe}: {message}");
    }
    assert_eq!(parse(&bundled("csv"), &[], b"a\n1\n").rows.len(), 1);
}
