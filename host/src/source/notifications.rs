//! A bucket's event notifications, read from SQS: the objects that S3's `ObjectCreated` events name, found
//! without listing the bucket.
//!
//! A message is received hidden from other consumers for the visibility timeout, and stays hidden while its
//! objects load: [`Received::keep_visible`] extends it every third of the timeout. It is deleted only once
//! the ledger has each of its objects settled ([`Notifications::delete`]); otherwise it comes back after the
//! timeout and is tried again (or goes to the queue's dead-letter queue, where the queue has one). A message
//! that names nothing of the source (garbage, another bucket, a removal) is logged and deleted at once; S3's
//! `s3:TestEvent` is deleted without a word more than a debug line.

use super::{ObjectMeta, SourceError};
use crate::config::{NotificationsConfig, S3SourceConfig};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, MessageSystemAttributeName,
    QueueAttributeName,
};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The most messages one ReceiveMessage, DeleteMessageBatch or ChangeMessageVisibilityBatch takes (SQS's
/// limit).
const BATCH: usize = 10;

/// An SQS queue that a bucket's event notifications go to, read for one S3 source.
pub struct Notifications {
    client: Client,
    queue_url: String,
    bucket: String,
    prefix: Option<String>,
    visibility: Duration,
    wait: Duration,
}

/// A received message that names objects of the source.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// SQS's id of the message: the same on every delivery of it.
    pub message_id: String,
    /// What this delivery is deleted or extended by.
    receipt: String,
    /// How many times SQS has handed the message out, this time included.
    pub receive_count: u32,
    /// The objects it names, as its events describe them.
    pub objects: Vec<ObjectMeta>,
}

/// What one receive took from the queue.
#[derive(Debug, Default)]
pub struct Received {
    /// Messages that name objects of the source, to be loaded.
    pub deliveries: Vec<Delivery>,
    /// Messages logged and deleted: unreadable, or naming nothing of the source.
    pub dropped: usize,
    /// S3's test events, deleted.
    pub test_events: usize,
}

/// What a message's body says.
#[derive(Debug, PartialEq)]
pub enum Message {
    /// New objects of the source.
    Objects(Vec<ObjectMeta>),
    /// S3's `s3:TestEvent`, sent when notifications are set up.
    TestEvent,
    /// Nothing of the source, and why: not an S3 event, another bucket, outside the prefix, a removal.
    Foreign(String),
}

impl Notifications {
    /// The queue `config.notifications` names, reached with the source's credentials (and role) at its
    /// own endpoint and region; no request is made until the first receive.
    pub async fn connect(config: &S3SourceConfig) -> Result<Notifications, SourceError> {
        let settings: &NotificationsConfig =
            config.notifications.as_ref().ok_or_else(|| SourceError::Setup {
                source_name: format!("s3://{}", config.bucket),
                message: "the source has no `notifications` queue".into(),
            })?;
        let (_, shared) = config.access().resolve().await;
        let mut sqs = aws_sdk_sqs::config::Builder::from(&shared);
        // The source's `endpoint` is S3's: the queue is at its own, or at AWS's for the region.
        sqs.set_endpoint_url(settings.endpoint.clone());
        if let Some(region) = &settings.region {
            sqs.set_region(Some(aws_sdk_sqs::config::Region::new(region.clone())));
        }
        Ok(Notifications {
            client: Client::from_conf(sqs.build()),
            queue_url: settings.queue_url.clone(),
            bucket: config.bucket.clone(),
            prefix: config.prefix.clone().filter(|prefix| !prefix.is_empty()),
            visibility: settings.visibility_timeout(),
            wait: settings.wait_time(),
        })
    }

    /// The queue, for messages.
    pub fn describe(&self) -> &str {
        &self.queue_url
    }

    /// How long a received message stays hidden unless extended.
    pub fn visibility(&self) -> Duration {
        self.visibility
    }

    /// Waits up to the configured wait time for messages, at most ten. Those that name nothing of the
    /// source are logged and deleted here; the rest are returned, hidden for the visibility timeout.
    pub async fn receive(&self) -> Result<Received, SourceError> {
        let answer = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(BATCH as i32)
            .wait_time_seconds(self.wait.as_secs() as i32)
            .visibility_timeout(seconds(self.visibility))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| self.error("receiving", &e))?;
        let mut received = Received::default();
        let mut unwanted = Vec::new();
        for message in answer.messages.unwrap_or_default() {
            let (Some(message_id), Some(receipt)) = (message.message_id, message.receipt_handle) else {
                continue;
            };
            let receive_count = message
                .attributes
                .as_ref()
                .and_then(|attributes| attributes.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|count| count.parse().ok())
                .unwrap_or(1);
            match read_message(message.body.as_deref().unwrap_or(""), &self.bucket, self.prefix.as_deref()) {
                Message::Objects(objects) => {
                    received.deliveries.push(Delivery { message_id, receipt, receive_count, objects })
                }
                Message::TestEvent => {
                    tracing::debug!(queue = self.queue_url, message = message_id, "S3's test event, deleted");
                    received.test_events += 1;
                    unwanted.push(receipt);
                }
                Message::Foreign(why) => {
                    tracing::warn!(queue = self.queue_url, message = message_id, "message dropped: {why}");
                    received.dropped += 1;
                    unwanted.push(receipt);
                }
            }
        }
        if let Err(error) = self.delete_receipts(unwanted).await {
            tracing::warn!("{error}; the messages dropped come back and are dropped again");
        }
        Ok(received)
    }

    /// About how many messages wait in the queue (`sluice check`): proof that it can be reached and read,
    /// without receiving any.
    pub async fn waiting(&self) -> Result<u64, SourceError> {
        let answer = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| self.error("reading the attributes of", &e))?;
        let count = answer.attributes().and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages));
        Ok(count.and_then(|count| count.parse().ok()).unwrap_or(0))
    }

    /// Deletes `deliveries`: their objects are settled.
    pub async fn delete(&self, deliveries: &[&Delivery]) -> Result<(), SourceError> {
        self.delete_receipts(deliveries.iter().map(|d| d.receipt.clone()).collect()).await
    }

    /// Hides `deliveries` for `visibility` from now: the timeout again to keep them while they load, or
    /// zero to hand them back to the queue at once (a daemon that stops before loading them).
    pub async fn set_visibility(
        &self,
        deliveries: &[Delivery],
        visibility: Duration,
    ) -> Result<(), SourceError> {
        for chunk in deliveries.chunks(BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, delivery)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&delivery.receipt)
                        .visibility_timeout(seconds(visibility))
                        .build()
                        .expect("id and receipt handle are set")
                })
                .collect();
            let answer = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| self.error("extending the visibility of", &e))?;
            if let Some(failed) = answer.failed.first() {
                return Err(self.refused("extending the visibility of", failed.code(), failed.message()));
            }
        }
        Ok(())
    }

    async fn delete_receipts(&self, receipts: Vec<String>) -> Result<(), SourceError> {
        for chunk in receipts.chunks(BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, receipt)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .expect("id and receipt handle are set")
                })
                .collect();
            let answer = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| self.error("deleting messages from", &e))?;
            if let Some(failed) = answer.failed.first() {
                return Err(self.refused("deleting messages from", failed.code(), failed.message()));
            }
        }
        Ok(())
    }

    fn error<E, R>(&self, doing: &str, error: &SdkError<E, R>) -> SourceError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let message = match (error.code(), error.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            _ => super::s3::summary(&DisplayErrorContext(error).to_string()),
        };
        SourceError::Queue {
            queue: self.queue_url.clone(),
            message: format!("{doing} the queue failed: {message}"),
        }
    }

    fn refused(&self, doing: &str, code: &str, message: Option<&str>) -> SourceError {
        SourceError::Queue {
            queue: self.queue_url.clone(),
            message: format!(
                "{doing} the queue failed: {code}{}",
                message.map(|m| format!(": {m}")).unwrap_or_default()
            ),
        }
    }
}

impl Received {
    /// Every object of the deliveries, each version once.
    pub fn objects(&self) -> Vec<ObjectMeta> {
        self.objects_once().cloned().collect()
    }

    /// Every object of the deliveries, each version once, as the deliveries hold them.
    pub fn objects_once(&self) -> impl Iterator<Item = &ObjectMeta> {
        let mut seen = HashSet::new();
        let all = self.deliveries.iter().flat_map(|delivery| delivery.objects.iter());
        all.filter(move |object| seen.insert((object.key.clone(), object.etag.clone())))
    }

    /// Keeps the deliveries hidden from other consumers until the guard is dropped, extending their
    /// visibility by the timeout every third of it on `runtime`.
    pub fn keep_visible(
        &self,
        notifications: &Arc<Notifications>,
        runtime: &tokio::runtime::Handle,
    ) -> KeepVisible {
        let (notifications, deliveries) = (notifications.clone(), self.deliveries.clone());
        let task = runtime.spawn(async move {
            let every = notifications.visibility / 3;
            loop {
                tokio::time::sleep(every).await;
                if let Err(error) = notifications.set_visibility(&deliveries, notifications.visibility).await
                {
                    tracing::warn!("{error}; the messages may be handed to another consumer");
                }
            }
        });
        KeepVisible(task)
    }
}

/// Keeps messages hidden while it lives; see [`Received::keep_visible`].
pub struct KeepVisible(tokio::task::JoinHandle<()>);

impl Drop for KeepVisible {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// SQS counts whole seconds.
fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

/// Reads a message's body: S3's event notification (as S3 sends it, or wrapped by SNS without raw delivery),
/// S3's test event, or anything else.
pub fn read_message(body: &str, bucket: &str, prefix: Option<&str>) -> Message {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return Message::Foreign(format!("not JSON: {}", excerpt(body)));
    };
    // SNS's envelope, where S3 notifies a topic that the queue subscribes to.
    if value.get("Type").and_then(Value::as_str) == Some("Notification")
        && let Some(inner) = value.get("Message").and_then(Value::as_str)
    {
        return read_message(inner, bucket, prefix);
    }
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Message::TestEvent;
    }
    let Some(records) = value.get("Records").and_then(Value::as_array) else {
        return Message::Foreign(format!("not an S3 event notification: {}", excerpt(body)));
    };
    let mut objects = Vec::new();
    let mut unwanted = Vec::new();
    for record in records {
        match read_record(record, bucket, prefix) {
            Ok(object) => objects.push(object),
            Err(why) => unwanted.push(why),
        }
    }
    if objects.is_empty() {
        let why =
            if unwanted.is_empty() { "an event with no records".to_string() } else { unwanted.join("; ") };
        return Message::Foreign(why);
    }
    for why in unwanted {
        tracing::warn!("an event record dropped: {why}");
    }
    Message::Objects(objects)
}

/// One record of an S3 event: the object it created, or why it names nothing to load.
fn read_record(record: &Value, bucket: &str, prefix: Option<&str>) -> Result<ObjectMeta, String> {
    let text =
        |path: &[&str]| path.iter().try_fold(record, |value, field| value.get(field)).and_then(Value::as_str);
    if let Some(source) = text(&["eventSource"]).filter(|source| !source.ends_with(":s3")) {
        return Err(format!("an event from `{source}`, not S3"));
    }
    let event = text(&["eventName"]).ok_or("an S3 event record without an eventName")?;
    let raw_key = text(&["s3", "object", "key"]).ok_or("an S3 event record without an object key")?;
    let key =
        decode_key(raw_key).ok_or_else(|| format!("the object key `{raw_key}` is not URL-encoded UTF-8"))?;
    if !event.starts_with("ObjectCreated:") {
        return Err(format!("`{event}` of `{key}` is not an object created"));
    }
    let from = text(&["s3", "bucket", "name"]).ok_or("an S3 event record without a bucket")?;
    if from != bucket {
        return Err(format!("`{key}` is in bucket `{from}`, not `{bucket}`"));
    }
    if let Some(prefix) = prefix.filter(|prefix| !key.starts_with(prefix)) {
        return Err(format!("`{key}` is outside the source's prefix `{prefix}`"));
    }
    if key.ends_with('/') {
        return Err(format!("`{key}` is a folder placeholder"));
    }
    let etag = text(&["s3", "object", "eTag"]).ok_or_else(|| format!("the event of `{key}` has no eTag"))?;
    let size = record
        .pointer("/s3/object/size")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("the event of `{key}` has no size"))?;
    let last_modified = text(&["eventTime"])
        .and_then(|time| humantime::parse_rfc3339_weak(time).ok())
        .unwrap_or_else(SystemTime::now);
    Ok(ObjectMeta { key, size, etag: etag.trim_matches('"').to_string(), last_modified })
}

/// An event's object key, which S3 URL-encodes with `+` for a space.
fn decode_key(raw: &str) -> Option<String> {
    percent_encoding::percent_decode_str(&raw.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|key| key.into_owned())
}

/// The start of a message, for a log line.
fn excerpt(body: &str) -> String {
    const LONGEST: usize = 120;
    match body.char_indices().nth(LONGEST) {
        Some((end, _)) => format!("{:?}…", &body[..end]),
        None => format!("{body:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event as S3 sends it (the structure of S3's documentation, version 2.1).
    fn event(name: &str, bucket: &str, key: &str) -> String {
        serde_json::json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-12-06T10:00:00.123Z", "eventName": name,
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "sluice",
                   "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
                   "object": {"key": key, "size": 42, "eTag": "0123abcd", "sequencer": "0055AED6DCD90281E5"}}
        }]})
        .to_string()
    }

    #[test]
    fn an_object_created_event_names_its_object_with_its_key_decoded() {
        let Message::Objects(objects) =
            read_message(&event("ObjectCreated:Put", "b", "in/red+flower%282%29.csv"), "b", Some("in/"))
        else {
            panic!("an object")
        };
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].key, "in/red flower(2).csv");
        assert_eq!((objects[0].size, objects[0].etag.as_str()), (42, "0123abcd"));
        assert_eq!(objects[0].last_modified, humantime::parse_rfc3339("2026-12-06T10:00:00.123Z").unwrap());
    }

    #[test]
    fn test_events_and_sns_envelopes_are_recognised() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-12-06T10:00:00.000Z","Bucket":"b","RequestId":"1","HostId":"2"}"#;
        assert_eq!(read_message(test, "b", None), Message::TestEvent);
        let sns = serde_json::json!({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:1:t",
                                     "Message": event("ObjectCreated:CompleteMultipartUpload", "b", "x.csv")});
        assert!(
            matches!(read_message(&sns.to_string(), "b", None), Message::Objects(o) if o[0].key == "x.csv")
        );
    }

    #[test]
    fn garbage_and_what_is_not_the_sources_is_foreign() {
        let foreign = |body: &str, prefix| match read_message(body, "b", prefix) {
            Message::Foreign(why) => why,
            other => panic!("{body} read as {other:?}"),
        };
        assert!(foreign("not json at all", None).contains("not JSON"));
        assert!(foreign(r#"{"hello": "world"}"#, None).contains("not an S3 event"));
        assert!(foreign(r#"{"Records": []}"#, None).contains("no records"));
        assert!(foreign(r#"{"Records": [{"eventName": 7}]}"#, None).contains("without an eventName"));
        assert!(foreign(&event("ObjectCreated:Put", "other", "a.csv"), None).contains("bucket `other`"));
        assert!(foreign(&event("ObjectCreated:Put", "b", "elsewhere/a.csv"), Some("in/")).contains("prefix"));
        assert!(
            foreign(&event("ObjectRemoved:Delete", "b", "a.csv"), None).contains("not an object created")
        );
        assert!(foreign(&event("ObjectCreated:Put", "b", "in/"), None).contains("folder"));
        assert!(foreign(&event("ObjectCreated:Put", "b", "%FF.csv"), None).contains("not URL-encoded UTF-8"));
    }
}
