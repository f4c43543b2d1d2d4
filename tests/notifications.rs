//! Event-driven discovery: `sluice daemon` reads a bucket's event notifications from SQS (moto's server,
//! started by each test) and loads the objects they name without listing the bucket; each message is
//! deleted once its object is in the table, kept hidden while a slow object loads, and dropped when it
//! names nothing of the source. The scheduled run's listing still catches what no event named.
//!
//! State and tables are in PostgreSQL, as in a deployment with many workers.

mod support;

use sluice_testkit::TestDatabase;
use sluice_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use sluice_testkit::sqs::{SqsServer, object_created};
use std::time::{Duration, SystemTime};
use support::daemon::{Daemon, daemon_section, free_port};

const BUCKET: &str = "exports";
/// Rows in each object.
const ROWS: usize = 20;
/// How long these tests wait for the daemons to load what the events name.
const PROMPTLY: Duration = Duration::from_secs(60);

/// An object of [`ROWS`] rows whose ids start with `name`.
fn csv(name: &str) -> Vec<u8> {
    let mut csv = String::from("id,amount\n");
    for row in 0..ROWS {
        csv.push_str(&format!("{name}-{row},{row}.5\n"));
    }
    csv.into_bytes()
}

/// `connector.toml` of one daemon: `Orders` from `s3` (`orders/`) into PostgreSQL, its events from the
/// queue at `queue_url` (with `queue` settings more), run by its schedule only when asked.
fn configuration(
    s3: &S3Server,
    sqs: &SqsServer,
    queue_url: &str,
    queue: &str,
    database: &TestDatabase,
) -> String {
    format!(
        "[state]\nurl = \"{url}\"\nlease_timeout = \"5s\"\n\n[sink]\nurl = \"{url}\"\n\n\
         [dataflows.Orders]\nschedule = \"manual\"\nformat = {{ plugin = \"csv\" }}\nsink = {{ table = \"orders\" }}\n\
         [dataflows.Orders.source]\ntype = \"s3\"\nbucket = \"{BUCKET}\"\nprefix = \"orders/\"\nendpoint = \"{}\"\n\
         region = \"us-east-1\"\naccess_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\n\
         notifications = {{ queue_url = \"{queue_url}\", endpoint = \"{}\"{queue} }}\n",
        s3.endpoint(),
        sqs.endpoint(),
        url = database.url()
    )
}

/// A daemon in a folder of its own.
fn daemon(config: &str) -> (Daemon, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(dir.path().join("connector.toml"), format!("{}{config}", daemon_section(port, "")))
        .unwrap();
    (Daemon::start(dir.path(), port), dir)
}

/// (rows, distinct ids, markers) of the table.
fn loaded(database: &TestDatabase) -> (i64, i64, i64) {
    let mut client = database.client();
    let count = |client: &mut postgres::Client, sql: &str| -> i64 {
        client.query_one(sql, &[]).map(|row| row.get(0)).unwrap_or(0)
    };
    (
        count(&mut client, "SELECT count(*) FROM orders.orders"),
        count(&mut client, "SELECT count(DISTINCT id) FROM orders.orders"),
        count(&mut client, "SELECT count(*) FROM orders._sluice_objects"),
    )
}

/// The keys of the objects committed to the table, in order.
fn committed_keys(database: &TestDatabase) -> Vec<String> {
    let rows = database.client().query("SELECT key FROM orders._sluice_objects ORDER BY key", &[]).unwrap();
    rows.iter().map(|row| row.get(0)).collect()
}

fn wait_for_objects(daemon: &Daemon, database: &TestDatabase, objects: usize) {
    daemon.wait_until(&format!("{objects} objects in the table"), PROMPTLY, |_| {
        loaded(database).2 >= objects as i64
    });
}

/// Asserts that the table holds `objects` objects, each once.
fn assert_each_once(database: &TestDatabase, objects: usize) {
    let (rows, distinct, markers) = loaded(database);
    assert_eq!(markers, objects as i64, "every object committed once");
    assert_eq!(rows, (objects * ROWS) as i64, "no object's rows twice");
    assert_eq!(distinct, rows, "no row twice");
}

/// The daemon's count of its queue's messages that ended as `outcome`, from `/metrics`.
fn messages(daemon: &Daemon, outcome: &str) -> u64 {
    let (_, metrics) = daemon.get("/metrics");
    metrics
        .lines()
        .filter(|line| line.starts_with("sluice_notification_messages_total{"))
        .filter(|line| {
            line.contains("dataflow=\"Orders\"") && line.contains(&format!("outcome=\"{outcome}\""))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn wait_for_empty_queue(daemon: &Daemon, sqs: &SqsServer, queue_url: &str) {
    daemon.wait_until("the queue to empty", PROMPTLY, |_| sqs.counts(queue_url) == (0, 0));
}

#[test]
fn events_load_new_objects_without_a_listing_and_the_scheduled_run_catches_the_rest() {
    let (s3, sqs, database) = (S3Server::start(), SqsServer::start(), TestDatabase::create());
    s3.create_bucket(BUCKET);
    // Uploaded before the bucket's notifications were set up: no event names them.
    for name in ["before-1", "before-2"] {
        s3.put(BUCKET, &format!("orders/{name}.csv"), &csv(name), SystemTime::now());
    }
    let queue = sqs.create_queue("orders-events");
    s3.notify_queue(BUCKET, sqs.client(), &queue);
    let (daemon, dir) = daemon(&configuration(&s3, &sqs, &queue, "", &database));
    // `sluice check` reaches the queue without receiving from it.
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir.path())
        .arg("check")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{said}{}", String::from_utf8_lossy(&check.stderr));
    assert!(said.contains("Orders: notification queue") && said.contains("reachable"), "{said}");
    let listed_by_check = s3.list_pages();
    // S3 sends a test event when notifications are set up.
    sqs.send(&queue, r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-12-06T10:00:00.000Z","Bucket":"exports","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR"}"#);

    for name in ["new-1", "new 2 (with spaces)", "new-3"] {
        s3.put(BUCKET, &format!("orders/{name}.csv"), &csv(name), SystemTime::now());
    }
    wait_for_objects(&daemon, &database, 3);
    wait_for_empty_queue(&daemon, &sqs, &queue);
    assert_each_once(&database, 3);
    assert_eq!(s3.list_pages(), listed_by_check, "no listing: the events named the objects");
    let keys = committed_keys(&database);
    assert_eq!(keys, ["orders/new 2 (with spaces).csv", "orders/new-1.csv", "orders/new-3.csv"]);
    daemon.wait_until("the messages counted", PROMPTLY, |d| messages(d, "deleted") == 3);
    assert_eq!(messages(&daemon, "test_event"), 1);
    assert_eq!(messages(&daemon, "kept") + messages(&daemon, "dropped"), 0);
    let runs = daemon.runs("Orders");
    assert!(runs.iter().all(|run| run["status"] == "succeeded"), "{runs:?}");

    // The schedule's run lists the bucket: it takes the two no event named, and none of the three again.
    let before = daemon.runs("Orders").len();
    daemon.run("Orders");
    let run = daemon.wait_for_run_end("Orders", before);
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["objects"], 2, "{run}");
    assert!(s3.list_pages() > listed_by_check);
    assert_each_once(&database, 5);
}

#[test]
fn a_message_delivered_twice_loads_its_object_once() {
    let (s3, sqs, database) = (S3Server::start(), SqsServer::start(), TestDatabase::create());
    s3.create_bucket(BUCKET);
    let queue = sqs.create_queue("orders-events");
    let body = csv("twice");
    let etag = s3.put(BUCKET, "orders/twice.csv", &body, SystemTime::now());
    let event = object_created(BUCKET, "orders/twice.csv", body.len() as u64, &etag, SystemTime::now());
    // SQS delivers at least once: the same event, twice, received together or one after the other.
    sqs.send(&queue, &event);
    sqs.send(&queue, &event);
    let (daemon, _dir) = daemon(&configuration(&s3, &sqs, &queue, "", &database));
    wait_for_objects(&daemon, &database, 1);
    wait_for_empty_queue(&daemon, &sqs, &queue);
    daemon.wait_until("both messages deleted", PROMPTLY, |d| messages(d, "deleted") == 2);

    // Once more, long after the object loaded: the ledger has it, and the message is only deleted.
    sqs.send(&queue, &event);
    wait_for_empty_queue(&daemon, &sqs, &queue);
    daemon.wait_until("the third message deleted", PROMPTLY, |d| messages(d, "deleted") == 3);
    assert_each_once(&database, 1);
    assert_eq!(messages(&daemon, "kept"), 0);
}

#[test]
fn an_object_that_outlives_the_visibility_timeout_is_not_handed_to_a_second_worker() {
    let (s3, sqs, database) = (S3Server::start(), SqsServer::start(), TestDatabase::create());
    s3.create_bucket(BUCKET);
    // Every download takes three visibility timeouts.
    s3.set_get_delay(Duration::from_secs(6));
    let queue = sqs.create_queue("orders-events");
    s3.notify_queue(BUCKET, sqs.client(), &queue);
    let config = configuration(&s3, &sqs, &queue, ", visibility_timeout = \"2s\"", &database);
    // Two workers poll the queue: were the message to reappear, the second would receive it.
    let workers = [daemon(&config), daemon(&config)];
    s3.put(BUCKET, "orders/large.csv", &csv("large"), SystemTime::now());
    let first = &workers[0].0;
    wait_for_objects(first, &database, 1);
    wait_for_empty_queue(first, &sqs, &queue);
    first.wait_until("the message deleted", PROMPTLY, |_| {
        workers.iter().map(|(d, _)| messages(d, "deleted")).sum::<u64>() == 1
    });
    let received: u64 = workers.iter().map(|(d, _)| messages(d, "received")).sum();
    assert_eq!(received, 1, "the message was received once, by one worker, however long its object took");
    assert_each_once(&database, 1);
}

#[test]
fn a_queue_of_garbage_is_dropped_and_the_events_among_it_load() {
    let (s3, sqs, database) = (S3Server::start(), SqsServer::start(), TestDatabase::create());
    s3.create_bucket(BUCKET);
    let queue = sqs.create_queue("orders-events");
    let now = SystemTime::now();
    let garbage = [
        "not json at all".to_string(),
        r#"{"hello": "world"}"#.to_string(),
        r#"{"Records": [{"eventName": 7}]}"#.to_string(),
        object_created("another-bucket", "orders/x.csv", 10, "abc", now),
        object_created(BUCKET, "elsewhere/x.csv", 10, "abc", now),
        object_created(BUCKET, "orders/gone.csv", 10, "abc", now)
            .replace("ObjectCreated:Put", "ObjectRemoved:Delete"),
        "\u{1F4A9}".repeat(500),
    ];
    for body in &garbage {
        sqs.send(&queue, body);
    }
    let body = csv("good");
    let etag = s3.put(BUCKET, "orders/good.csv", &body, now);
    sqs.send(&queue, &object_created(BUCKET, "orders/good.csv", body.len() as u64, &etag, now));
    let (daemon, _dir) = daemon(&configuration(&s3, &sqs, &queue, "", &database));

    wait_for_objects(&daemon, &database, 1);
    wait_for_empty_queue(&daemon, &sqs, &queue);
    daemon.wait_until("the garbage dropped", PROMPTLY, |d| messages(d, "dropped") == garbage.len() as u64);
    assert_eq!(messages(&daemon, "deleted"), 1);
    assert_each_once(&database, 1);
    let log = daemon.log_text();
    for why in [
        "not JSON",
        "not an S3 event notification",
        "bucket `another-bucket`",
        "prefix `orders/`",
        "ObjectRemoved:Delete",
    ] {
        assert!(log.contains(why), "the log says why a message was dropped ({why}):\n{log}");
    }
    assert_eq!(daemon.get("/healthz").0, 200);
}

#[test]
fn three_workers_take_the_events_of_one_queue_and_load_each_object_once() {
    let (s3, sqs, database) = (S3Server::start(), SqsServer::start(), TestDatabase::create());
    s3.create_bucket(BUCKET);
    s3.set_get_delay(Duration::from_millis(100));
    let queue = sqs.create_queue("orders-events");
    s3.notify_queue(BUCKET, sqs.client(), &queue);
    let config = configuration(&s3, &sqs, &queue, "", &database);
    let workers = [daemon(&config), daemon(&config), daemon(&config)];
    const OBJECTS: usize = 30;
    for object in 0..OBJECTS {
        let name = format!("{object:02}");
        s3.put(BUCKET, &format!("orders/{name}.csv"), &csv(&name), SystemTime::now());
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = &workers[0].0;
    wait_for_objects(first, &database, OBJECTS);
    wait_for_empty_queue(first, &sqs, &queue);
    first.wait_until("every message deleted", PROMPTLY, |_| {
        workers.iter().map(|(d, _)| messages(d, "deleted")).sum::<u64>() == OBJECTS as u64
    });
    assert_each_once(&database, OBJECTS);
    let received: Vec<u64> = workers.iter().map(|(d, _)| messages(d, "received")).collect();
    assert_eq!(received.iter().sum::<u64>(), OBJECTS as u64, "each message received once: {received:?}");
    assert_eq!(s3.list_pages(), 0, "no listing");
}

#[test]
fn a_slot_that_comes_during_a_run_of_events_lists_the_bucket_when_it_ends() {
    let (s3, sqs, database) = (S3Server::start(), SqsServer::start(), TestDatabase::create());
    s3.create_bucket(BUCKET);
    let queue = sqs.create_queue("orders-events");
    s3.notify_queue(BUCKET, sqs.client(), &queue);
    // A slot every 5 seconds; a run of events that takes longer than that.
    let config = configuration(&s3, &sqs, &queue, "", &database)
        .replace("schedule = \"manual\"", "schedule = \"*/5 * * * * *\"");
    let (daemon, _dir) = daemon(&config);
    daemon.wait_until("the first sync's listing", PROMPTLY, |_| s3.list_pages() > 0);
    s3.set_get_delay(Duration::from_secs(6));
    s3.put(BUCKET, "orders/slow.csv", &csv("slow"), SystemTime::now());
    daemon.wait_until("a slot to wait for the run of events", PROMPTLY, |d| {
        d.log_text().contains("the slot runs when the run of events ends")
    });
    let listed_before = s3.list_pages();
    wait_for_objects(&daemon, &database, 1);
    daemon.wait_until("the waiting slot's listing", PROMPTLY, |_| s3.list_pages() > listed_before);
    assert_each_once(&database, 1);
}

/// A ZIP archive of stored members, `(name, bytes)` each.
fn zip_of(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in members {
        writer.start_file(*name, stored).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

#[test]
fn an_archive_an_event_names_loads_as_its_members_and_its_message_waits_while_it_cannot_be_read() {
    use sluice_testkit::s3::BodyFault;
    let (s3, sqs, database) = (S3Server::start(), SqsServer::start(), TestDatabase::create());
    s3.create_bucket(BUCKET);
    let queue = sqs.create_queue("orders-events");
    let archive = zip_of(&[("a.csv", csv("a")), ("late/b.csv", csv("b"))]);
    let now = SystemTime::now();
    let etag = s3.put(BUCKET, "orders/batch.zip", &archive, now);
    // The connection breaks on the archive's directory, as it is listed and again as it is opened: the
    // archive stays whole and pending, so its message must come back rather than be deleted as done.
    s3.fail_next_bodies(2, BodyFault::CutAfter(0));
    sqs.send(&queue, &object_created(BUCKET, "orders/batch.zip", archive.len() as u64, &etag, now));
    let config = configuration(&s3, &sqs, &queue, ", visibility_timeout = \"2s\"", &database)
        .replace("region = \"us-east-1\"\n", "region = \"us-east-1\"\nread_retries = 0\n");
    let (daemon, _dir) = daemon(&config);

    wait_for_objects(&daemon, &database, 2);
    wait_for_empty_queue(&daemon, &sqs, &queue);
    daemon.wait_until("the message deleted", PROMPTLY, |d| messages(d, "deleted") == 1);
    assert!(messages(&daemon, "kept") >= 1, "kept while its directory could not be read");
    assert_each_once(&database, 2);
    let keys = committed_keys(&database);
    assert_eq!(keys, ["orders/batch.zip!/a.csv", "orders/batch.zip!/late/b.csv"]);
    assert_eq!(s3.list_pages(), 0, "no listing: the event named the archive");
}
