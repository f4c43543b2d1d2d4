//! What a plugin's language costs: the same format (`key=value;...` lines) as a Rust plugin (the one
//! `sluice plugin new NAME --kind format` writes) and as a Python plugin (`examples/python-keyvalues`, built
//! with componentize-py), through the same host path on the same bytes in one run. The Rust plugin is the
//! baseline. Both are built by the bench (cargo, and the example's build script), and compiled by the host
//! once, outside the timing.
//!
//! ```sh
//! cargo bench --bench languages                        # 20 MB, median of 3 rounds
//! cargo bench --bench languages -- --mb 5 --rounds 1
//! ```

use sluice::parse::parse_stream;
use sluice::plugin::{FormatPlugin, HostSettings, Limits, PluginHost, PluginSource, PluginSpec};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let flag = |name: &str| args.iter().position(|a| a == name).map(|i| args[i + 1].clone());
    let megabytes: usize = flag("--mb").map_or(20, |v| v.parse().expect("--mb takes a number"));
    let rounds: usize = flag("--rounds").map_or(3, |v| v.parse().expect("--rounds takes a number"));

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let rust = build_rust(&root);
    let python = root.join("target/plugins/python_keyvalues.wasm");
    run(Command::new("bash").arg(root.join("examples/python-keyvalues/build.sh")).arg(&python));

    let mut input = Vec::with_capacity(megabytes << 20);
    let mut n = 0u64;
    while input.len() < megabytes << 20 {
        input.extend_from_slice(
            format!("id={n};name=customer {n};amount={}.25;city=Oslo;note=a note of some length\n", n % 1000)
                .as_bytes(),
        );
        n += 1;
    }
    let host = PluginHost::new(HostSettings::default()).expect("plugin host");
    println!("input: {:.1} MB, {n} lines; median of {rounds} rounds", input.len() as f64 / 1e6);
    let baseline = measure(&load(&host, "rust", rust), &input, rounds);
    let python = measure(&load(&host, "python", python), &input, rounds);
    println!("{:<38} {:>9} {:>8}", "plugin", "MB/s", "ratio");
    println!("{:<38} {:>9.1} {:>8.3}", "Rust (sluice plugin new), baseline", baseline, 1.0);
    println!("{:<38} {:>9.1} {:>8.3}", "Python (componentize-py)", python, python / baseline);
}

fn run(command: &mut Command) {
    let output = command.output().expect("running a build");
    assert!(output.status.success(), "{:?} failed:\n{}", command, String::from_utf8_lossy(&output.stderr));
}

/// Makes the Rust plugin with `sluice plugin new` and builds it.
fn build_rust(root: &Path) -> PathBuf {
    let dir = tempfile::tempdir().unwrap();
    run(Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(dir.path()).args([
        "plugin",
        "new",
        "keyvalues",
        "--kind",
        "format",
    ]));
    let target = root.join("target/plugin-new");
    run(Command::new(env!("CARGO"))
        .current_dir(dir.path().join("keyvalues"))
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS"));
    target.join("wasm32-wasip2/release/keyvalues.wasm")
}

fn load(host: &PluginHost, name: &str, path: PathBuf) -> FormatPlugin {
    let spec = PluginSpec { name: name.into(), source: PluginSource::File(path), limits: Limits::default() };
    host.load_format(&spec).expect("the plugin loads")
}

/// The median throughput of `rounds` parses of `input`, MB/s.
fn measure(plugin: &FormatPlugin, input: &[u8], rounds: usize) -> f64 {
    let mut times: Vec<Duration> = (0..rounds.max(1))
        .map(|_| {
            let started = Instant::now();
            let summary = parse_stream(plugin, None, "bench", &[], input, |_| Ok(())).expect("parses");
            assert!(summary.rows > 0);
            started.elapsed()
        })
        .collect();
    times.sort();
    input.len() as f64 / 1e6 / times[times.len() / 2].as_secs_f64()
}
