//! Helpers shared by the end-to-end tests: a plugin host, running bytes through a plugin, and building the
//! test-only guest components with cargo.

#![allow(dead_code)] // each test binary uses its own subset of these helpers

pub mod backend;
pub mod daemon;

use sluice::plugin::{
    FormatPlugin, HostSettings, Limits, PluginError, PluginHost, PluginSource, PluginSpec, RejectedRow,
    bundled_format,
};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The repository's connector.toml and sample files, copied where a test can change them.
pub fn example() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root().join("connector.toml"), dir.path().join("connector.toml")).unwrap();
    for folder in ["orders", "customers", "products"] {
        let from = root().join("examples/data").join(folder);
        let to = dir.path().join("examples/data").join(folder);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    dir
}

/// How long one command of these tests may take before it is taken for hung (see [`output_within`]).
pub const HUNG: Duration = Duration::from_secs(300);

/// `command`'s output, as [`Command::output`] gives it, but killed after [`HUNG`], failing the test.
pub fn output(command: &mut Command) -> Output {
    let child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    output_within(child.expect("starting the command"), HUNG)
}

/// What `child` printed once it exits. One still running after `limit` is killed and the test fails with
/// what it had printed: a hung process fails its test, where it would otherwise hold the whole suite until
/// CI's limit with nothing to show. Its stdout and stderr must be piped.
pub fn output_within(mut child: Child, limit: Duration) -> Output {
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let Some(status) = status else {
        panic!(
            "still running after {limit:?}, so killed; it had printed:\n{}\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    };
    Output { status, stdout, stderr }
}

/// One plugin host per test binary, with a compile cache under `target/`.
pub fn host() -> &'static PluginHost {
    static HOST: OnceLock<PluginHost> = OnceLock::new();
    HOST.get_or_init(|| {
        let cache_dir = Some(root().join("target").join("test-plugin-cache"));
        PluginHost::new(HostSettings { cache_dir }).expect("plugin host")
    })
}

/// A bundled format plugin, by name.
pub fn bundled(name: &str) -> FormatPlugin {
    let spec = PluginSpec {
        name: name.to_string(),
        source: PluginSource::Bundled(bundled_format(name).expect("a bundled plugin")),
        limits: Limits::default(),
    };
    host().load_format(&spec).expect("bundled plugins load")
}

/// What parsing some bytes gave.
#[derive(Debug)]
pub struct Outcome {
    /// Each record as a JSON object (null values included); where serde_json cannot hold a record (a number
    /// like 1e400, nesting past its recursion limit), the record's JSON text as a string.
    pub rows: Vec<serde_json::Value>,
    /// The 1-based line each record starts on.
    pub lines: Vec<u64>,
    pub rejects: Vec<RejectedRow>,
    /// Set when the file could not be read to its end.
    pub error: Option<PluginError>,
}

/// Feeds `input` to `plugin` in chunks of `chunk_size` bytes.
pub fn parse_chunked(
    plugin: &FormatPlugin,
    options: &[(&str, &str)],
    input: &[u8],
    chunk_size: usize,
) -> Outcome {
    let options: Vec<(String, String)> =
        options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut outcome = Outcome { rows: Vec::new(), lines: Vec::new(), rejects: Vec::new(), error: None };
    let collect = |parsed: sluice::plugin::Parsed, outcome: &mut Outcome| {
        for batch in &parsed.batches {
            for row in 0..batch.num_rows() {
                let mut line = Vec::new();
                batch.write_json_row(row, &mut line).unwrap();
                let text = String::from_utf8(line).unwrap();
                outcome.rows.push(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)));
                outcome.lines.push(batch.line(row));
            }
        }
        outcome.rejects.extend(parsed.rejects);
    };
    let mut parse = match plugin.open("test-object", &options) {
        Ok(parse) => parse,
        Err(error) => {
            outcome.error = Some(error);
            return outcome;
        }
    };
    for chunk in input.chunks(chunk_size.max(1)) {
        match parse.feed(chunk) {
            Ok(parsed) => collect(parsed, &mut outcome),
            Err(error) => {
                collect(parse.take_completed_before_failure(), &mut outcome);
                outcome.error = Some(error);
                return outcome;
            }
        }
    }
    match parse.finish() {
        Ok(parsed) => collect(parsed, &mut outcome),
        Err(error) => {
            collect(parse.take_completed_before_failure(), &mut outcome);
            outcome.error = Some(error);
        }
    }
    outcome
}

/// Feeds `input` in 1 MiB chunks, as `sluice parse` does.
pub fn parse(plugin: &FormatPlugin, options: &[(&str, &str)], input: &[u8]) -> Outcome {
    parse_chunked(plugin, options, input, sluice::parse::CHUNK_SIZE)
}

/// Builds the wasm32-wasip2 crates of the cargo workspace at `manifest_dir` (relative to the repository
/// root) and returns the folder holding their `.wasm` files.
pub fn build_guests(manifest_dir: &str) -> PathBuf {
    let target_dir = root().join("target").join("wasm-test-guests");
    let status = Command::new(env!("CARGO"))
        .current_dir(root().join(manifest_dir))
        .args(["build", "--release", "--locked", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("running cargo");
    assert!(status.success(), "building the guests in {manifest_dir} failed");
    target_dir.join("wasm32-wasip2").join("release")
}

/// Loads a `.wasm` file as a format plugin with the given limits.
pub fn load_file(name: &str, path: PathBuf, limits: Limits) -> Result<FormatPlugin, PluginError> {
    host().load_format(&PluginSpec { name: name.to_string(), source: PluginSource::File(path), limits })
}
