//! SQS for tests: moto's server on 127.0.0.1 (started from the virtual environment that
//! `tests/support/moto_server.sh` keeps under `target/`), a client of it, and S3's event notification as S3
//! writes it, for [`crate::S3Server::notify_queue`] and for tests that send events by hand.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::QueueAttributeName;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// How long moto may take to start, its first installation included (about a minute here).
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// moto's server on a free port of 127.0.0.1; it stops when dropped.
pub struct SqsServer {
    endpoint: String,
    child: Child,
    log: tempfile::NamedTempFile,
    client: Client,
    runtime: tokio::runtime::Runtime,
}

impl SqsServer {
    /// Starts moto's server, installing it first where `target/` has no copy. Panics, saying why, where it
    /// cannot: these tests need it, and `.ci/run` installs it.
    pub fn start() -> SqsServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port on 127.0.0.1")
            .port();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/support/moto_server.sh");
        let log = tempfile::NamedTempFile::new().expect("a log file for moto");
        let child = Command::new("bash")
            .arg(&script)
            .arg(port.to_string())
            .stdout(log.reopen().expect("moto's log"))
            .stderr(log.reopen().expect("moto's log"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let endpoint = format!("http://127.0.0.1:{port}");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(crate::s3::REGION))
            .endpoint_url(&endpoint)
            .credentials_provider(Credentials::new("moto", "moto", None, None, "testkit"))
            .build();
        let mut server = SqsServer { endpoint, child, log, client: Client::from_conf(config), runtime };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("moto's server (SQS for these tests) exited with {status}: {}", server.log_text());
            }
            if started.elapsed() > START_TIMEOUT {
                panic!(
                    "moto's server did not answer on port {port} within {START_TIMEOUT:?}: {}",
                    server.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A client of the server.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Creates a queue; its URL.
    pub fn create_queue(&self, name: &str) -> String {
        let created = self.runtime.block_on(self.client.create_queue().queue_name(name).send());
        created.expect("moto creates a queue").queue_url.expect("a queue URL")
    }

    /// Sends `body` to the queue at `url`.
    pub fn send(&self, url: &str, body: &str) {
        let sent = self.runtime.block_on(self.client.send_message().queue_url(url).message_body(body).send());
        sent.expect("moto takes a message");
    }

    /// The queue's messages: (waiting to be received, received and hidden).
    pub fn counts(&self, url: &str) -> (u64, u64) {
        let asked =
            self.client.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::All);
        let attributes = self.runtime.block_on(asked.send()).expect("moto tells a queue's attributes");
        let count = |name: QueueAttributeName| {
            attributes.attributes().and_then(|a| a.get(&name)).and_then(|n| n.parse().ok()).unwrap_or(0)
        };
        (
            count(QueueAttributeName::ApproximateNumberOfMessages),
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }
}

impl Drop for SqsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The event notification S3 sends for an object created by a PUT (the message structure of S3's
/// documentation, version 2.1), its key URL-encoded as S3 encodes it (`+` for a space, `/` kept).
pub fn object_created(bucket: &str, key: &str, size: u64, etag: &str, at: SystemTime) -> String {
    let encoded: String = form_urlencoded::byte_serialize(key.as_bytes()).collect();
    serde_json::json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": crate::s3::REGION,
        "eventTime": humantime::format_rfc3339_millis(at).to_string(),
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "sluice-test",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"}, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encoded.replace("%2F", "/"), "size": size, "eTag": etag, "sequencer": "0055AED6DCD90281E5"}
        }
    }]})
    .to_string()
}
