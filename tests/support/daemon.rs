//! `sluice daemon` as a process of a test's own: started on a free loopback port in a folder of the
//! test's, talked to over its HTTP API, signalled, and killed when the test ends.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for something the daemon should do at once (a first sync, a reload).
pub const PROMPTLY: Duration = Duration::from_secs(30);

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The `[daemon]` section of a test's configuration: listening on `port`, with `extra` lines.
pub fn daemon_section(port: u16, extra: &str) -> String {
    format!("[daemon]\nlisten = \"127.0.0.1:{port}\"\n{extra}\n\n")
}

pub struct Daemon {
    child: Child,
    pub port: u16,
    /// Every line the daemon wrote to stderr (its log).
    pub log: Arc<Mutex<Vec<String>>>,
    http: reqwest::blocking::Client,
}

impl Daemon {
    /// Starts `sluice daemon` in `dir` (its `connector.toml`, listening on `port`) and waits for its API.
    pub fn start(dir: &Path, port: u16) -> Daemon {
        Self::start_with(dir, port, &[], &[])
    }

    /// As [`Daemon::start`], with more arguments and environment.
    pub fn start_with(dir: &Path, port: u16, args: &[&str], env: &[(&str, String)]) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command
            .current_dir(dir)
            .args(args)
            .arg("daemon")
            .env("SLUICE_CACHE_DIR", super::root().join("target").join("test-plugin-cache"))
            .env_remove("SLUICE_STATE_URL")
            .env_remove("SLUICE_SINK_URL")
            .env_remove("SLUICE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("starting sluice daemon");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("daemon: {line}");
                lines.lock().unwrap().push(line);
            }
        });
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let mut daemon = Daemon { child, port, log, http };
        let started = Instant::now();
        while daemon.try_get("/healthz").is_err() {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!("the daemon exited with {status} before it listened:\n{}", daemon.log_text());
            }
            assert!(started.elapsed() < PROMPTLY, "the daemon did not listen on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn try_get(&self, path: &str) -> reqwest::Result<(u16, String)> {
        let response = self.http.get(self.url(path)).send()?;
        Ok((response.status().as_u16(), response.text()?))
    }

    /// GET `path`: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.try_get(path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// GET `path` as JSON, expecting 200.
    pub fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// A write request as the dashboard sends it: status and JSON body.
    pub fn write(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let response = self
            .http
            .request(method, self.url(path))
            .header("X-Requested-With", "test")
            .send()
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    /// `POST /api/dataflows/NAME/run`, expecting it queued.
    pub fn run(&self, name: &str) {
        let (status, body) = self.write(reqwest::Method::POST, &format!("/api/dataflows/{name}/run"));
        assert_eq!(status, 202, "run {name}: {body}");
    }

    /// The line of `name` in the dataflow list.
    pub fn dataflow(&self, name: &str) -> Value {
        let list = self.json("/api/dataflows");
        list.as_array().unwrap().iter().find(|d| d["name"] == name).cloned().unwrap_or(Value::Null)
    }

    /// The run history of `name`, newest first.
    pub fn runs(&self, name: &str) -> Vec<Value> {
        self.json(&format!("/api/dataflows/{name}/runs")).as_array().unwrap().clone()
    }

    /// Waits until `done` holds of the daemon, at most `timeout`.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut done: impl FnMut(&Daemon) -> bool) {
        let started = Instant::now();
        while !done(self) {
            assert!(
                started.elapsed() < timeout,
                "waited {timeout:?} for {what}; the log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the newest run of `name` to end (not queued or running) and returns it.
    pub fn wait_for_run_end(&self, name: &str, runs_before: usize) -> Value {
        self.wait_until(&format!("a run of {name} to end"), PROMPTLY, |d| {
            let runs = d.runs(name);
            let status = d.dataflow(name)["status"].clone();
            runs.len() > runs_before && status != "running" && status != "queued"
        });
        self.runs(name)[0].clone()
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the daemon at once (SIGKILL): nothing of it runs after.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < timeout,
                "the daemon did not exit within {timeout:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bundled plugins' `.wasm` files, as the host's build script made them.
pub fn bundled_wasm(crate_name: &str) -> PathBuf {
    PathBuf::from(env!("SLUICE_BUNDLED_PLUGINS")).join(format!("{crate_name}.wasm"))
}
