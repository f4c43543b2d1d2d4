//! Parsing speed of the bundled WASM plugins next to native Rust parsers, on the same bytes in one run.
//!
//!     cargo bench --bench parse                       # 100 MB each of CSV, TSV and JSONL, 5 rounds
//!     cargo bench --bench parse -- --mb 20 --rounds 3 # smaller and quicker
//!     cargo bench --bench parse -- --generate DIR --mb 1024   # only write DIR/bench.csv, DIR/bench.jsonl
//!     cargo bench --bench parse -- --compare-csv BEFORE.wasm AFTER.wasm --mb 10 --rounds 31
//!
//! `--compare-csv` times two builds of the csv plugin against each other on the CSV input, a round of each
//! in turn: on a machine whose speed drifts, the surest way to see what one change to a plugin is worth.
//!
//! Native baselines: the csv crate reading `StringRecord`s (UTF-8 checked, as the plugin checks it; with a
//! tab delimiter for TSV), and
//! serde_json reading each line into a `serde_json::Value`. The WASM path is what `sluice parse` and a
//! dataflow run: 1 MiB chunks into the plugin, record batches back, checked by the host. Each round runs the
//! baseline and then the plugin; throughputs are the medians of the rounds, and a ratio is the median of the
//! rounds' own ratios.

#[path = "support/args.rs"]
mod args;

use args::{flag, flag_values, number_flag};
use sluice::parse::parse_stream;
use sluice::plugin::{
    FormatPlugin, HostSettings, Limits, PluginHost, PluginSource, PluginSpec, bundled_format,
};
use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

fn main() {
    let megabytes: usize = number_flag("--mb", 100);
    let rounds: usize = number_flag("--rounds", 5);

    if let Some(dir) = flag("--generate") {
        let dir = std::path::Path::new(&dir);
        std::fs::create_dir_all(dir).unwrap();
        write_in_pieces(&dir.join("bench.csv"), megabytes, csv_rows);
        write_in_pieces(&dir.join("bench.jsonl"), megabytes, jsonl_rows);
        return;
    }

    let host = PluginHost::new(HostSettings::default()).expect("plugin host");
    let csv = generate(megabytes << 20, csv_rows);
    let jsonl = generate(megabytes << 20, jsonl_rows);
    println!(
        "input: {} MB of CSV, {} MB of JSONL; median of {rounds} rounds",
        csv.len() / 1_000_000,
        jsonl.len() / 1_000_000
    );
    println!("{:<34} {:>10} {:>12} {:>8}", "parser", "MB/s", "rows", "ratio");

    if let Some(builds) = flag_values("--compare-csv", 2) {
        let plugin = |path: &String| load_file(&host, path);
        let (before, after) = (plugin(&builds[0]), plugin(&builds[1]));
        let before: Parser = ("csv plugin, before", &|| through_plugin(&before, &csv));
        compare(rounds, csv.len(), before, ("csv plugin, after", &|| through_plugin(&after, &csv)));
        return;
    }
    // Plugins are compiled once, outside the timing, as a daemon does at start.
    let plugin = load(&host, "csv");
    let native: Parser = ("csv crate (native, StringRecord)", &|| native_csv(&csv, b','));
    compare(rounds, csv.len(), native, ("csv plugin (WASM)", &|| through_plugin(&plugin, &csv)));

    let tsv = generate(megabytes << 20, tsv_rows);
    let plugin = load(&host, "tsv");
    let native: Parser = ("csv crate, tabs (native)", &|| native_csv(&tsv, b'\t'));
    compare(rounds, tsv.len(), native, ("tsv plugin (WASM)", &|| through_plugin(&plugin, &tsv)));

    let plugin = load(&host, "jsonl");
    let native: Parser = ("serde_json (native, Value/line)", &|| native_jsonl(&jsonl));
    compare(rounds, jsonl.len(), native, ("jsonl plugin (WASM)", &|| through_plugin(&plugin, &jsonl)));
}

/// A parser by its name, run once over the whole input, returning the rows it read.
type Parser<'a> = (&'a str, &'a dyn Fn() -> u64);

/// Runs the baseline and the plugin in turn, `rounds` times, and prints each one's median throughput and
/// the median of the rounds' ratios. Each ratio compares two runs a moment apart, so a machine that
/// speeds up or slows down over the run (a shared host does, by a third) moves both sides of it alike.
fn compare(rounds: usize, bytes: usize, baseline: Parser<'_>, plugin: Parser<'_>) {
    let mut speeds: [Vec<f64>; 2] = Default::default();
    let mut ratios = Vec::new();
    let mut rows = 0;
    for _ in 0..rounds {
        let [(baseline_rows, baseline_time), (plugin_rows, plugin_time)] =
            [baseline, plugin].map(|(_, run)| {
                let started = Instant::now();
                (black_box(run()), started.elapsed().as_secs_f64())
            });
        assert_eq!(
            baseline_rows, plugin_rows,
            "{} read a different number of rows than its baseline",
            plugin.0
        );
        rows = plugin_rows;
        ratios.push(baseline_time / plugin_time);
        speeds[0].push(bytes as f64 / 1e6 / baseline_time);
        speeds[1].push(bytes as f64 / 1e6 / plugin_time);
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let [baseline_speed, plugin_speed] = speeds.map(median);
    println!("{:<34} {baseline_speed:>10.1} {rows:>12} {:>8}", baseline.0, "1.00 (baseline)");
    println!("{:<34} {plugin_speed:>10.1} {rows:>12} {:>8.2}", plugin.0, median(ratios));
}

fn load(host: &PluginHost, name: &str) -> FormatPlugin {
    let spec = PluginSpec {
        name: name.into(),
        source: PluginSource::Bundled(bundled_format(name).unwrap()),
        limits: Limits::default(),
    };
    host.load_format(&spec).expect("bundled plugin")
}

/// A build of the csv plugin from a `.wasm` file.
fn load_file(host: &PluginHost, path: &str) -> FormatPlugin {
    let spec =
        PluginSpec { name: "csv".into(), source: PluginSource::File(path.into()), limits: Limits::default() };
    host.load_format(&spec).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn through_plugin(plugin: &FormatPlugin, input: &[u8]) -> u64 {
    let summary = parse_stream(plugin, None, "bench", &[], input, |parsed| {
        black_box(parsed);
        Ok(())
    })
    .expect("the benchmark input parses");
    assert_eq!(summary.rejected, 0);
    summary.rows
}

fn native_csv(input: &[u8], delimiter: u8) -> u64 {
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).from_reader(input);
    let mut record = csv::StringRecord::new();
    let mut rows = 0;
    while reader.read_record(&mut record).expect("valid CSV") {
        black_box(&record);
        rows += 1;
    }
    rows
}

fn native_jsonl(input: &[u8]) -> u64 {
    let mut rows = 0;
    for line in input.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let value: serde_json::Value = serde_json::from_slice(line).expect("valid JSON");
        assert!(value.is_object());
        black_box(value);
        rows += 1;
    }
    rows
}

/// A deterministic pseudo-random stream (no dependency, same bytes every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

const WORDS: &[&str] =
    &["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett"];

/// Rows of an order export: ids, names, an e-mail, amounts, a timestamp, a quoted note with a comma.
fn csv_rows(out: &mut Vec<u8>, first: u64, count: u64, rng: &mut Lcg) {
    if first == 0 {
        out.extend_from_slice(b"id,customer,email,amount,currency,quantity,created,status,note\n");
    }
    for id in first..first + count {
        let (a, b) = (WORDS[(rng.next() % 10) as usize], WORDS[(rng.next() % 10) as usize]);
        writeln!(
            out,
            "{id},{a} {b},{a}.{b}{}@example.com,{}.{:02},usd,{},2026-{:02}-{:02}T{:02}:{:02}:00Z,{},\"{b}, {a} said \"\"ok\"\"\"",
            rng.next() % 1000,
            rng.next() % 100_000,
            rng.next() % 100,
            rng.next() % 50,
            1 + rng.next() % 12,
            1 + rng.next() % 28,
            rng.next() % 24,
            rng.next() % 60,
            if rng.next().is_multiple_of(5) { "refunded" } else { "paid" },
        )
        .unwrap();
    }
}

/// The same orders as TSV, as the bundled `tsv` (the csv plugin with a tab delimiter) reads it: every comma
/// before the quoted note (the last field, and the first quote of its line) becomes a tab.
fn tsv_rows(out: &mut Vec<u8>, first: u64, count: u64, rng: &mut Lcg) {
    let mut csv = Vec::new();
    csv_rows(&mut csv, first, count, rng);
    for line in csv.split_inclusive(|&b| b == b'\n') {
        let note = line.iter().position(|&b| b == b'"').unwrap_or(line.len());
        out.extend(line[..note].iter().map(|&b| if b == b',' { b'\t' } else { b }));
        out.extend_from_slice(&line[note..]);
    }
}

/// The same orders as JSON Lines, with a nested object and an array, as API exports have them.
fn jsonl_rows(out: &mut Vec<u8>, first: u64, count: u64, rng: &mut Lcg) {
    for id in first..first + count {
        let (a, b) = (WORDS[(rng.next() % 10) as usize], WORDS[(rng.next() % 10) as usize]);
        writeln!(
            out,
            r#"{{"id":{id},"customer":"{a} {b}","email":"{a}.{b}{}@example.com","amount":{}.{:02},"currency":"usd","quantity":{},"paid":{},"created":"2026-{:02}-{:02}T00:00:00Z","metadata":{{"sku":"SKU-{}","tags":["{a}","{b}"]}},"note":"{b}, {a} said \"ok\""}}"#,
            rng.next() % 1000,
            rng.next() % 100_000,
            rng.next() % 100,
            rng.next() % 50,
            !rng.next().is_multiple_of(5),
            1 + rng.next() % 12,
            1 + rng.next() % 28,
            rng.next() % 10_000,
        )
        .unwrap();
    }
}

fn generate(bytes: usize, rows: fn(&mut Vec<u8>, u64, u64, &mut Lcg)) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 4096);
    let mut rng = Lcg(42);
    let mut next = 0;
    while out.len() < bytes {
        rows(&mut out, next, 1000, &mut rng);
        next += 1000;
    }
    out
}

/// Writes a file of `megabytes` in pieces, so a 1 GB file never sits in memory whole.
fn write_in_pieces(path: &std::path::Path, megabytes: usize, rows: fn(&mut Vec<u8>, u64, u64, &mut Lcg)) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut rng = Lcg(42);
    let (mut written, mut next, mut piece) = (0, 0, Vec::new());
    while written < megabytes << 20 {
        piece.clear();
        rows(&mut piece, next, 1000, &mut rng);
        next += 1000;
        file.write_all(&piece).unwrap();
        written += piece.len();
    }
    file.flush().unwrap();
}
