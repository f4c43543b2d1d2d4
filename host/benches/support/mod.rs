//! What the sync benches share: generated order exports in the in-process S3 server, one timed sync of
//! them, the process's peak resident memory, and the command line's flags (`args`, which the other benches
//! take on its own).

pub mod args;

use sluice::config::Config;
use sluice::plugin::{HostSettings, PluginHost};
use sluice::state::RunStatus;
use sluice::sync::{Quiet, Runner};
use sluice_testkit::orders::csv_object;
use sluice_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use std::time::{Duration, Instant, SystemTime};

pub use args::number_flag;

pub const BUCKET: &str = "bench";

/// Order exports in a bucket of the in-process S3 server, as `--mb` and `--objects` ask.
pub struct Orders {
    pub s3: S3Server,
    pub objects: usize,
    /// Bytes of CSV each object is made of (about).
    pub per_object: usize,
    pub bytes: usize,
    pub rows: u64,
}

impl Orders {
    /// Reads `--mb` (default 1000) and `--objects` (default 100) and puts that many objects in the bucket.
    pub fn from_args() -> Orders {
        Orders::from_args_or(1000, 100)
    }

    /// As [`Orders::from_args`], with other defaults.
    pub fn from_args_or(default_megabytes: usize, default_objects: usize) -> Orders {
        // As the `sluice` binary does, before any thread starts.
        sluice::allocator::limit_arenas();
        let megabytes = number_flag("--mb", default_megabytes);
        let objects = number_flag("--objects", default_objects);
        let per_object = (megabytes * 1_000_000 / objects).max(1);

        let s3 = S3Server::start();
        s3.create_bucket(BUCKET);
        let (mut bytes, mut rows) = (0usize, 0u64);
        for object in 0..objects {
            let (body, count) = csv_object(rows, per_object);
            bytes += body.len();
            rows += count;
            s3.put(BUCKET, &format!("orders/{object:04}.csv"), body.as_bytes(), SystemTime::now());
        }
        println!("input: {objects} objects, {:.1} MB, {rows} rows", bytes as f64 / 1e6);
        Orders { s3, objects, per_object, bytes, rows }
    }

    /// Runs the dataflow `Orders` over the bucket into `sink` (a `sink = { ... }` value, or empty for the
    /// default), with its configuration in `dir`: the sync's time and peak resident memory (MB). The
    /// plugin is compiled outside the timing, as a daemon does at start.
    pub fn sync(&self, dir: &std::path::Path, sink: &str) -> (Duration, f64) {
        let sink = if sink.is_empty() { String::new() } else { format!("sink = {sink}\n") };
        let config_path = dir.join("connector.toml");
        std::fs::write(
            &config_path,
            format!(
                "[dataflows.Orders]\nsource = {{ type = \"s3\", bucket = \"{BUCKET}\", endpoint = \"{}\", access_key_id = \"{ACCESS_KEY}\", secret_access_key = \"{SECRET_KEY}\" }}\nformat = {{ plugin = \"csv\" }}\n{sink}",
                self.s3.endpoint()
            ),
        )
        .expect("the bench configuration is written");
        let config = Config::load(&config_path).expect("the bench configuration reads");
        let host = PluginHost::new(HostSettings::default()).expect("plugin host");
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        Runner::new(&config, &host, runtime.handle().clone()).preview("Orders", 1).expect("the preview runs");
        reset_peak_memory();
        let started = Instant::now();
        let report =
            Runner::new(&config, &host, runtime.handle().clone()).run("Orders", &Quiet).expect("the run");
        let sync = started.elapsed();
        let peak = peak_memory_mb();
        assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
        assert_eq!(report.counts.rows, self.rows);
        (sync, peak)
    }
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("its address").port()
}

/// A `sluice daemon` of the bench's, in `dir` (its `connector.toml`), logging warnings only; killed when
/// dropped.
pub struct Daemon(std::process::Child);

impl Daemon {
    pub fn start(dir: &std::path::Path) -> Daemon {
        let cache = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-plugin-cache");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(dir)
            .arg("daemon")
            .env("SLUICE_CACHE_DIR", cache)
            .env("SLUICE_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("a daemon starts");
        Daemon(child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resets the peak resident memory (VmHWM) to the current resident size, so that what follows is measured
/// alone (Linux 4.0 and later); memory the allocator still holds of what came before (a floor's rows, an
/// earlier round) is handed back first, so that it does not count.
pub fn reset_peak_memory() {
    // SAFETY: malloc_trim only releases free memory of glibc's heap; it takes no pointers.
    unsafe { libc::malloc_trim(0) };
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident memory (VmHWM) since the last reset, in MB.
pub fn peak_memory_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The median of some timings.
pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
