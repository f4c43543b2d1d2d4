//! The daemon's API under load: `GET /api/dataflows` at a fixed 1,000 requests a second for 10 seconds from
//! this process (an open loop: each request is sent at its time whether or not the ones before have been
//! answered, and its latency counts from that time, so a stall is not hidden), against `sluice daemon`
//! running the example configuration after its first syncs. The baseline is `GET /healthz`, which reads no
//! state, under the same load in the same run. Fails (exit 1) on any error or a p99 of 50 ms or more.
//!
//! ```sh
//! cargo bench --bench http                          # 1,000 requests/s for 10 s, each route
//! cargo bench --bench http -- --rate 2000 --seconds 5
//! ```

#[path = "support/args.rs"]
mod args;

use args::number_flag;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The p99 the issue asks for, and this bench holds the API to.
const P99_LIMIT: Duration = Duration::from_millis(50);

fn main() {
    let rate: u64 = number_flag("--rate", 1000);
    let seconds: u64 = number_flag("--seconds", 10);

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let dir = tempfile::tempdir().expect("a folder for the bench");
    copy_dir(&root.join("examples/data"), &dir.path().join("examples/data"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let example = std::fs::read_to_string(root.join("connector.toml")).unwrap();
    let listen = "listen = \"127.0.0.1:7878\"";
    assert!(example.contains(listen), "the example's [daemon] section sets {listen}");
    let config = example.replace(listen, &format!("listen = \"127.0.0.1:{port}\""));
    std::fs::write(dir.path().join("connector.toml"), config).unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir.path())
        .arg("daemon")
        .env("SLUICE_CACHE_DIR", root.join("target").join("test-plugin-cache"))
        .env("SLUICE_LOG", "warn")
        .env_remove("SLUICE_STATE_URL")
        .env_remove("SLUICE_SINK_URL")
        .stdout(Stdio::null())
        .spawn()
        .expect("starting sluice daemon");

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    runtime.block_on(wait_for_first_syncs(&client, &base));

    println!(
        "{rate} requests/s for {seconds} s per route, against the example's 3 dataflows after their first syncs"
    );
    let healthz = runtime.block_on(load(&client, &format!("{base}/healthz"), rate, seconds));
    let dataflows = runtime.block_on(load(&client, &format!("{base}/api/dataflows"), rate, seconds));
    let _ = daemon.kill();
    let _ = daemon.wait();
    healthz.print("GET /healthz (baseline)");
    dataflows.print("GET /api/dataflows");
    println!(
        "ratio /api/dataflows to /healthz: p50 {:.2}, p99 {:.2}",
        ratio(dataflows.percentile(0.50), healthz.percentile(0.50)),
        ratio(dataflows.percentile(0.99), healthz.percentile(0.99))
    );
    let failed = dataflows.errors > 0 || dataflows.percentile(0.99) >= P99_LIMIT;
    if failed {
        eprintln!("FAILED: /api/dataflows must answer every request with a p99 under {P99_LIMIT:?}");
        std::process::exit(1);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

async fn wait_for_first_syncs(client: &reqwest::Client, base: &str) {
    let started = Instant::now();
    loop {
        if let Ok(response) = client.get(format!("{base}/api/dataflows")).send().await
            && let Ok(list) = response.json::<serde_json::Value>().await
            && list.as_array().is_some_and(|l| l.iter().all(|d| d["status"] == "succeeded"))
        {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the daemon did not finish its first syncs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Measured {
    latencies: Vec<Duration>,
    errors: u64,
    elapsed: Duration,
}

impl Measured {
    fn percentile(&self, share: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::MAX;
        }
        let index =
            ((self.latencies.len() as f64 * share).ceil() as usize).clamp(1, self.latencies.len()) - 1;
        self.latencies[index]
    }

    fn print(&self, route: &str) {
        let millis = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{route}: {} answered in {:.1} s ({:.0}/s), {} errors; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.latencies.len(),
            self.elapsed.as_secs_f64(),
            self.latencies.len() as f64 / self.elapsed.as_secs_f64(),
            self.errors,
            millis(self.percentile(0.50)),
            millis(self.percentile(0.90)),
            millis(self.percentile(0.99)),
            millis(self.percentile(1.0)),
        );
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

/// Sends `rate` GETs a second to `url` for `seconds`, each at its own time.
async fn load(client: &reqwest::Client, url: &str, rate: u64, seconds: u64) -> Measured {
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = tokio::time::Instant::now();
    let mut requests = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due).await;
        let (client, url) = (client.clone(), url.to_string());
        requests.push(tokio::spawn(async move {
            let answered = match client.get(&url).send().await {
                Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                Err(_) => false,
            };
            (answered, due.elapsed())
        }));
    }
    let mut measured =
        Measured { latencies: Vec::with_capacity(total as usize), errors: 0, elapsed: Duration::ZERO };
    for request in requests {
        let (answered, latency) = request.await.unwrap();
        if answered {
            measured.latencies.push(latency);
        } else {
            measured.errors += 1;
        }
    }
    measured.elapsed = started.elapsed();
    measured.latencies.sort();
    measured
}
