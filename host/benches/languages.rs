//! What a plugin's language costs, through the same host path on the same bytes in one run, with the Rust
//! plugin as the baseline each time:
//! - a format (`key=value;...` lines): the Rust plugin `sluice plugin new NAME --kind format` writes, and
//!   the same in Python (`examples/python-keyvalues`, componentize-py);
//! - a data template (keep, rename and require columns): the Rust template `sluice plugin new NAME --kind
//!   template` writes, and the same in JavaScript (`examples/js-keep`, componentize-js). A template's time
//!   is measured as CSV parsing with it less CSV parsing alone.
//!
//! All are built by the bench (cargo, and the examples' build scripts) and compiled by the host once,
//! outside the timing.
//!
//! ```sh
//! cargo bench --bench languages                        # 20 MB, median of 3 rounds
//! cargo bench --bench languages -- --mb 5 --rounds 1
//! ```

#[path = "support/args.rs"]
mod args;

use args::number_flag;
use sluice::parse::parse_stream;
use sluice::plugin::{
    FormatPlugin, HostSettings, Limits, PluginHost, PluginSource, PluginSpec, TemplatePlugin, bundled_format,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    let megabytes: usize = number_flag("--mb", 20);
    let rounds: usize = number_flag("--rounds", 3);

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let rust_format = build_rust(&root, "keyvalues", "format");
    let rust_template = build_rust(&root, "keep_fields", "template");
    let python = root.join("target/plugins/python_keyvalues.wasm");
    run(Command::new("bash").arg(root.join("examples/python-keyvalues/build.sh")).arg(&python));
    let javascript = root.join("target/plugins/js_keep.wasm");
    run(Command::new("bash").arg(root.join("examples/js-keep/build.sh")).arg(&javascript));

    let host = PluginHost::new(HostSettings::default()).expect("plugin host");
    let (mut kv, mut csv) = (Vec::with_capacity(megabytes << 20), b"id,name,amount,city,note\n".to_vec());
    let mut n = 0u64;
    while kv.len() < megabytes << 20 {
        let (amount, note) = (n % 1000, "a note of some length");
        kv.extend_from_slice(
            format!("id={n};name=customer {n};amount={amount}.25;city=Oslo;note={note}\n").as_bytes(),
        );
        csv.extend_from_slice(format!("{n},customer {n},{amount}.25,Oslo,{note}\n").as_bytes());
        n += 1;
    }
    println!(
        "input: {:.1} MB of key=value lines, {:.1} MB of CSV, {n} records each; median of {rounds} rounds",
        kv.len() as f64 / 1e6,
        csv.len() as f64 / 1e6
    );
    println!("{:<44} {:>12} {:>8}", "plugin", "", "ratio");
    let baseline = mb_per_second(&kv, measure(&load_format(&host, "rust", rust_format), None, &kv, rounds));
    let python = mb_per_second(&kv, measure(&load_format(&host, "python", python), None, &kv, rounds));
    println!("{:<44} {:>7.1} MB/s {:>8.3}", "format, Rust (sluice plugin new), baseline", baseline, 1.0);
    println!("{:<44} {:>7.1} MB/s {:>8.3}", "format, Python (componentize-py)", python, python / baseline);

    let reader = load_format(&host, "csv", PathBuf::new());
    let options = [("fields", "[\"id\",\"name\",\"city\"]"), ("prefix", "item_"), ("required", "id")];
    let alone = measure(&reader, None, &csv, rounds);
    let per_million = |total: Duration| (total.saturating_sub(alone)).as_secs_f64() / n as f64 * 1e6;
    let rust = per_million(measure(
        &reader,
        Some((&load_template(&host, "rust", rust_template), &options)),
        &csv,
        rounds,
    ));
    let js = per_million(measure(
        &reader,
        Some((&load_template(&host, "js", javascript), &options)),
        &csv,
        rounds,
    ));
    println!("{:<44} {:>7.2} s/M  {:>8.3}", "template, Rust (sluice plugin new), baseline", rust, 1.0);
    println!("{:<44} {:>7.2} s/M  {:>8.3}", "template, JavaScript (componentize-js)", js, rust / js);
    println!(
        "(s/M: seconds per million records of the template's own time; ratio: speed against the baseline)"
    );
}

fn run(command: &mut Command) {
    let output = command.output().expect("running a build");
    assert!(output.status.success(), "{:?} failed:\n{}", command, String::from_utf8_lossy(&output.stderr));
}

/// Makes a Rust plugin with `sluice plugin new` and builds it.
fn build_rust(root: &Path, name: &str, kind: &str) -> PathBuf {
    let dir = tempfile::tempdir().unwrap();
    run(Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir.path())
        .args(["plugin", "new", name, "--kind", kind]));
    let target = root.join("target/plugin-new");
    run(Command::new(env!("CARGO"))
        .current_dir(dir.path().join(name))
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS"));
    target.join(format!("wasm32-wasip2/release/{name}.wasm"))
}

/// A format plugin from `path`; the bundled `csv` for an empty path.
fn load_format(host: &PluginHost, name: &str, path: PathBuf) -> FormatPlugin {
    let source = match path.as_os_str().is_empty() {
        true => PluginSource::Bundled(bundled_format(name).expect("a bundled format")),
        false => PluginSource::File(path),
    };
    host.load_format(&PluginSpec { name: name.into(), source, limits: Limits::default() })
        .expect("the plugin loads")
}

fn load_template(host: &PluginHost, name: &str, path: PathBuf) -> TemplatePlugin {
    let spec = PluginSpec { name: name.into(), source: PluginSource::File(path), limits: Limits::default() };
    host.load_template(&spec).expect("the template loads")
}

fn mb_per_second(input: &[u8], took: Duration) -> f64 {
    input.len() as f64 / 1e6 / took.as_secs_f64()
}

/// The median time of `rounds` parses of `input` (through `template` with its options, where given).
fn measure(
    plugin: &FormatPlugin,
    template: Option<(&TemplatePlugin, &[(&str, &str)])>,
    input: &[u8],
    rounds: usize,
) -> Duration {
    let mut times: Vec<Duration> = (0..rounds.max(1))
        .map(|_| {
            let mut run = template.map(|(template, options)| {
                let options: Vec<(String, String)> =
                    options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                template.open("bench", &options).expect("the template takes its options")
            });
            let started = Instant::now();
            let summary =
                parse_stream(plugin, run.as_mut(), "bench", &[], input, |_| Ok(())).expect("parses");
            assert!(summary.rows > 0);
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}
