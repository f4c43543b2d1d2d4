//! `[dataflows.NAME]`: where a dataflow reads, how it parses, where it writes, and when.

use super::duration;
use crate::env::{self, Secret};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The first run of a dataflow takes objects modified this recently (the product Sluice reproduces takes
/// the last 90 days).
pub const DEFAULT_INITIAL_LOOKBACK: Duration = Duration::from_secs(90 * 24 * 3600);

/// How far before the cursor each later run looks again. S3's LastModified is when an upload began, so a
/// large upload can appear after a sync with a LastModified before that sync's cursor; the object ledger
/// keeps what the overlap lists again from being imported twice.
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// `[dataflows.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataflowConfig {
    /// The name shown in listings (default: the dataflow's key).
    pub display_name: Option<String>,
    /// What the dataflow is for, as listings show it.
    pub description: Option<String>,
    /// Where the dataflow's objects come from.
    pub source: SourceConfig,
    /// How the objects are read (a file source needs one; a Stripe source has records, not files).
    pub format: Option<FormatConfig>,
    /// A data template that turns records into target objects.
    pub template: Option<TemplateConfig>,
    /// Where the records go (default: a table named after the dataflow in `sluice.db`).
    #[serde(default)]
    pub sink: SinkConfig,
    /// When the daemon runs the dataflow: `daily` (default), `daily at HH:MM`, `every 6h`, a cron
    /// expression, or `manual`.
    #[serde(default, deserialize_with = "schedule")]
    pub schedule: Schedule,
    /// The IANA time zone of the schedule (default: `[daemon] time_zone`, else UTC).
    pub time_zone: Option<String>,
    /// The first run takes objects modified within this (default `90d`).
    #[serde(default, deserialize_with = "duration")]
    pub initial_lookback: Option<Duration>,
    /// Later runs look this far before the cursor again (default `1d`).
    #[serde(default, deserialize_with = "duration")]
    pub overlap: Option<Duration>,
}

impl DataflowConfig {
    /// A dataflow from `source`, with every setting at its default: built from Rust values rather than
    /// read from a file; a file source also needs [`DataflowConfig::with_format`]. Checked when it is
    /// added to a configuration ([`crate::config::Config::add_dataflow`]).
    pub fn new(source: SourceConfig) -> DataflowConfig {
        DataflowConfig {
            display_name: None,
            description: None,
            source,
            format: None,
            template: None,
            sink: SinkConfig::default(),
            schedule: Schedule::default(),
            time_zone: None,
            initial_lookback: None,
            overlap: None,
        }
    }

    /// The format plugin its files are read with (`csv`, `jsonl`, a `[plugins]` name, a `.wasm` path).
    pub fn with_format(mut self, format: FormatConfig) -> DataflowConfig {
        self.format = Some(format);
        self
    }

    /// Where its records go.
    pub fn with_sink(mut self, sink: SinkConfig) -> DataflowConfig {
        self.sink = sink;
        self
    }

    /// The data template its records pass through.
    pub fn with_template(mut self, template: TemplateConfig) -> DataflowConfig {
        self.template = Some(template);
        self
    }

    /// The format of a file source's objects (checked when the configuration was read).
    pub fn file_format(&self) -> &FormatConfig {
        self.format.as_ref().expect("a file source has a format, checked when the configuration was read")
    }

    /// How far back the first run looks (default 90 days).
    pub fn initial_lookback(&self) -> Duration {
        self.initial_lookback.unwrap_or(DEFAULT_INITIAL_LOOKBACK)
    }

    /// How far before the cursor later runs look again (default 1 day).
    pub fn overlap(&self) -> Duration {
        self.overlap.unwrap_or(DEFAULT_OVERLAP)
    }

    /// A digest of the dataflow's settings that changes when they do; secrets count only as present.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        format!("{:x}", Sha256::digest(format!("{self:?}").as_bytes()))
    }
}

/// `[dataflows.NAME.source]`, by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SourceConfig {
    /// A folder whose files stand in for a bucket.
    Local(LocalSourceConfig),
    /// An Amazon S3 bucket, or a bucket of an S3-compatible store.
    S3(S3SourceConfig),
    /// Stripe's API: objects become tables.
    Stripe(StripeSourceConfig),
    /// A source the program embedding Sluice registered under `name` (see [`crate::embed`]).
    Custom(CustomSourceConfig),
}

/// `type = "custom"`: a source written in Rust by the program that embeds Sluice, which registers it by
/// name ([`crate::embed::Sluice::register_source`]). The `sluice` binary registers none.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomSourceConfig {
    /// The name the source was registered under.
    pub name: String,
}

impl SourceConfig {
    /// A folder's files, `path` relative to the configuration's folder.
    pub fn local(path: impl Into<String>) -> SourceConfig {
        SourceConfig::Local(LocalSourceConfig { path: path.into(), prefix: None })
    }

    /// The source registered under `name` by the program embedding Sluice.
    pub fn custom(name: impl Into<String>) -> SourceConfig {
        SourceConfig::Custom(CustomSourceConfig { name: name.into() })
    }
}

/// `type = "stripe"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeSourceConfig {
    /// The objects to import, by API path, each into a table of its own (`customers`, `charges`, ...).
    pub tables: Vec<String>,
    /// A secret or restricted key (default: `STRIPE_API_KEY` from the environment).
    pub api_key: Option<Secret>,
    /// A connected account to read (`Stripe-Account`).
    #[serde(default, deserialize_with = "env::optional")]
    pub account: Option<String>,
    /// The API's base URL (default `https://api.stripe.com`).
    #[serde(default, deserialize_with = "env::optional")]
    pub api_base: Option<String>,
    /// Requests per second (default 25 with a test key, 100 with a live key).
    pub rate_limit: Option<u32>,
    /// Retries of a request that met a 429, a 5xx or a network error (default 6).
    pub max_retries: Option<u32>,
    /// Later runs list objects created this long before the newest one seen again, and events this long
    /// before the newest event seen (default `1h`): what was created or changed while a run listed is
    /// not missed.
    #[serde(default, deserialize_with = "duration")]
    pub lookback: Option<Duration>,
}

/// `type = "local"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSourceConfig {
    /// The folder, relative to the configuration file.
    #[serde(deserialize_with = "env::string")]
    pub path: String,
    /// Only keys (paths below `path`, with `/`) that start with this are read.
    #[serde(default, deserialize_with = "env::optional")]
    pub prefix: Option<String>,
}

/// `type = "s3"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3SourceConfig {
    #[serde(deserialize_with = "env::string")]
    /// The bucket's name.
    pub bucket: String,
    /// The bucket's region (default: from the environment or profile, else `us-east-1`).
    #[serde(default, deserialize_with = "env::optional")]
    pub region: Option<String>,
    /// Only this folder (key prefix) is read.
    #[serde(default, deserialize_with = "env::optional")]
    pub prefix: Option<String>,
    /// A role to assume for access, as with a cross-account IAM role.
    #[serde(default, deserialize_with = "env::optional")]
    pub role_arn: Option<String>,
    /// The external ID the role's trust policy asks for.
    pub external_id: Option<Secret>,
    /// An S3-compatible store's address (`http://127.0.0.1:9000`).
    #[serde(default, deserialize_with = "env::optional")]
    pub endpoint: Option<String>,
    /// Address buckets as `endpoint/bucket` rather than `bucket.endpoint` (default: true when `endpoint`
    /// is set).
    pub force_path_style: Option<bool>,
    /// Static credentials; without them the default chain is used (environment, profile, web identity,
    /// container or instance role).
    pub access_key_id: Option<Secret>,
    /// The secret half of `access_key_id`.
    pub secret_access_key: Option<Secret>,
    /// A session token that goes with temporary credentials.
    pub session_token: Option<Secret>,
    /// How often a download that breaks is resumed within the run (a ranged GET from the byte it broke
    /// at, of the same version) before the object is left for the next run (default 3).
    pub read_retries: Option<u32>,
    /// How long a download may go without a byte before it counts as broken (default 60s).
    #[serde(default, deserialize_with = "duration")]
    pub stall_timeout: Option<Duration>,
    /// The bucket's event notifications, read from an SQS queue: new objects are loaded as their events
    /// arrive, and the schedule's runs list the bucket to catch what the queue missed.
    pub notifications: Option<Box<NotificationsConfig>>,
}

/// `notifications = { queue_url = "..." }` on an S3 source: the SQS queue the bucket's `s3:ObjectCreated:*`
/// events are sent to. The queue is the dataflow's own: a message about another bucket or outside the
/// source's prefix is dropped.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// The queue's URL (`https://sqs.us-east-1.amazonaws.com/123456789012/orders-events`).
    #[serde(deserialize_with = "env::string")]
    pub queue_url: String,
    /// An SQS-compatible service's address (default: AWS's SQS in the source's region; the source's own
    /// `endpoint` is S3's, not the queue's).
    #[serde(default, deserialize_with = "env::optional")]
    pub endpoint: Option<String>,
    /// The queue's region, where it is not the bucket's.
    #[serde(default, deserialize_with = "env::optional")]
    pub region: Option<String>,
    /// How long a received message stays hidden from other consumers (default 60s). It is extended by as
    /// much every third of it while its objects load, so a slow load is never handed to a second worker.
    #[serde(default, deserialize_with = "duration")]
    pub visibility_timeout: Option<Duration>,
    /// How long one receive waits for a message (long polling, 0s to 20s; default 20s).
    #[serde(default, deserialize_with = "duration")]
    pub wait_time: Option<Duration>,
}

/// A received message's visibility, unless configured.
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(60);
/// SQS's longest long poll, and the default.
pub const LONGEST_WAIT_TIME: Duration = Duration::from_secs(20);
/// SQS's longest visibility timeout: 12 hours.
const LONGEST_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

impl NotificationsConfig {
    /// A received message's visibility.
    pub fn visibility_timeout(&self) -> Duration {
        self.visibility_timeout.unwrap_or(DEFAULT_VISIBILITY_TIMEOUT)
    }

    /// How long one receive waits.
    pub fn wait_time(&self) -> Duration {
        self.wait_time.unwrap_or(LONGEST_WAIT_TIME)
    }

    /// What serde cannot check, as (key below `notifications`, message).
    pub(super) fn check(&self) -> Result<(), (&'static str, String)> {
        if !(self.queue_url.starts_with("https://") || self.queue_url.starts_with("http://")) {
            return Err((
                "queue_url",
                format!(
                    "`{}` is not a queue URL like https://sqs.us-east-1.amazonaws.com/123456789012/QUEUE",
                    self.queue_url
                ),
            ));
        }
        let visibility = self.visibility_timeout();
        if visibility < Duration::from_secs(1) || visibility > LONGEST_VISIBILITY_TIMEOUT {
            return Err((
                "visibility_timeout",
                "SQS takes a visibility timeout from 1s to 12h, in whole seconds".to_string(),
            ));
        }
        if self.wait_time() > LONGEST_WAIT_TIME {
            return Err(("wait_time", "SQS waits at most 20s for a message".to_string()));
        }
        Ok(())
    }
}

impl S3SourceConfig {
    /// How the bucket is reached.
    pub fn access(&self) -> crate::aws::S3Access {
        crate::aws::S3Access {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            force_path_style: self.force_path_style,
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            session_token: self.session_token.clone(),
            role_arn: self.role_arn.clone(),
            external_id: self.external_id.clone(),
        }
    }
}

/// `[dataflows.NAME.format]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatConfig {
    /// A bundled format (`csv`, `tsv`, `json`, `jsonl`), a `[plugins]` name, or a path to a `.wasm` file.
    pub plugin: String,
    /// Handed to the plugin; see each plugin's documentation.
    #[serde(default)]
    pub options: toml::Table,
    /// How objects are compressed: `auto` (by extension or magic bytes, the default), `none`, `gzip`,
    /// `zstd`.
    #[serde(default)]
    pub compression: Compression,
}

impl FormatConfig {
    /// The plugin `plugin` with no options, compression told from each object.
    pub fn plugin(plugin: impl Into<String>) -> FormatConfig {
        FormatConfig { plugin: plugin.into(), options: toml::Table::new(), compression: Compression::Auto }
    }

    /// Sets one option handed to the plugin (`"delimiter"`, `";"`).
    pub fn option(mut self, key: impl Into<String>, value: impl Into<toml::Value>) -> FormatConfig {
        self.options.insert(key.into(), value.into());
        self
    }
}

/// How an object's bytes are compressed.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// By the key's extension (`.gz`, `.zst`), else by the first bytes.
    #[default]
    Auto,
    /// Objects are read as they are.
    None,
    /// Objects are gzip streams.
    Gzip,
    /// Objects are zstd streams.
    Zstd,
}

/// `[dataflows.NAME.template]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// A bundled template or a path to a `.wasm` component of the `template` world.
    pub plugin: String,
    #[serde(default)]
    /// Handed to the template; see its documentation (`map` takes `object` and `fields`).
    pub options: toml::Table,
}

/// `[dataflows.NAME.sink]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// `tables`: records become rows of a database table. `stripe`: records become Stripe objects (each
    /// record's fields are the API's parameters, as a data template makes them), and the table keeps
    /// what Stripe answered per record. `custom`: the sink the program embedding Sluice registered as
    /// `name`.
    #[serde(rename = "type", default)]
    pub kind: SinkKind,
    /// Custom: the name the embedding program registered the sink under.
    pub name: Option<String>,
    /// Stripe: the object records become, by its API path (`products`, `prices`, `customers`, ...).
    pub object: Option<String>,
    /// Stripe: the record field that names a record across imports, so a re-imported file updates
    /// instead of duplicating (default `id` for products, which take a caller's id, else
    /// `metadata.external_id`).
    pub external_id: Option<String>,
    /// Stripe: the secret or restricted key (default: `STRIPE_API_KEY` from the environment).
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// Stripe: a connected account to act for (`Stripe-Account`).
    #[serde(default, deserialize_with = "env::optional")]
    pub account: Option<String>,
    /// Stripe: the API's base URL (default `https://api.stripe.com`).
    #[serde(default, deserialize_with = "env::optional")]
    pub api_base: Option<String>,
    /// Stripe: requests per second (default 25 with a test key, 100 with a live key).
    pub rate_limit: Option<u32>,
    /// Stripe: requests in flight at once (default a quarter of the rate, 4 to 32).
    pub concurrency: Option<usize>,
    /// Stripe: retries of a request that met a 429, a 5xx or a network error (default 6).
    pub max_retries: Option<u32>,
    /// The database: `sqlite://PATH` (relative to the configuration file; default `sqlite://sluice.db`)
    /// or `postgres://USER@HOST/DATABASE`, where the dataflow's tables go into a schema named after it.
    #[serde(default, deserialize_with = "env::optional")]
    pub url: Option<String>,
    /// The table (default: the dataflow's name in lower case).
    pub table: Option<String>,
    /// How a run's rows meet the table's: `append` (the default), `replace` (the table becomes exactly
    /// what the run loaded), `merge` (upsert on `key`; a later row with the same key wins).
    #[serde(default)]
    pub mode: WriteMode,
    /// The columns a `merge` matches rows on.
    #[serde(default)]
    pub key: Vec<String>,
    /// How many runs back `sluice rollback` can go (default 7); older versions are let go.
    pub versions: Option<u32>,
    /// What the table is for: `all` (the default), `customer-360` or `privacy-metadata`.
    #[serde(default)]
    pub purpose: TablePurpose,
    /// `data` (the default) or `metadata`.
    #[serde(default, rename = "kind")]
    pub table_kind: TableKind,
    /// What a value the column's type cannot hold does: `text` (the default) widens the column to text,
    /// keeping every value as written; `fail` fails the object, loading none of it.
    #[serde(default)]
    pub on_type_conflict: TypeConflict,
    /// Delta Lake: the size a Parquet file is closed at, in MiB (default 128).
    pub file_size_mb: Option<u64>,
    /// Delta Lake: a commit is made at least every this many objects (default 1000) ...
    pub commit_objects: Option<usize>,
    /// ... or once the oldest object not committed yet was loaded this long ago (default 60s), and at
    /// the end of every run.
    #[serde(default, deserialize_with = "duration")]
    pub commit_interval: Option<Duration>,
    /// Delta Lake: the Parquet files' compression, `zstd` (the default) or `snappy`.
    #[serde(default)]
    pub compression: ParquetCompression,
    /// Delta Lake on S3 (`delta+s3://`): how the bucket is reached, with the S3 source's options.
    pub s3: Option<crate::aws::S3Access>,
    /// Delta Lake: the columns the table is partitioned by, fixed when the table is made.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Objects loaded at once, each in its own transaction on its own connection: PostgreSQL in `append`
    /// mode only (default: the machine's cores, at most 4); SQLite takes one writer at a time, and
    /// `replace` and `merge` depend on the order objects are loaded in, so those load one by one.
    pub parallelism: Option<usize>,
}

/// What a table is for, as the product Sluice reproduces labels tables.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TablePurpose {
    #[default]
    /// Any data.
    All,
    #[serde(rename = "customer-360")]
    /// Data about customers, for a customer-360 view.
    Customer360,
    /// Data about what is private, for privacy tooling.
    PrivacyMetadata,
}

impl TablePurpose {
    /// The purpose as listings show it.
    pub fn as_str(self) -> &'static str {
        match self {
            TablePurpose::All => "all",
            TablePurpose::Customer360 => "customer-360",
            TablePurpose::PrivacyMetadata => "privacy-metadata",
        }
    }
}

/// Whether a table holds data or data about data.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    #[default]
    /// Records.
    Data,
    /// Data about other data.
    Metadata,
}

impl TableKind {
    /// The kind as listings show it.
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Data => "data",
            TableKind::Metadata => "metadata",
        }
    }
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            kind: SinkKind::Tables,
            name: None,
            object: None,
            external_id: None,
            api_key: None,
            account: None,
            api_base: None,
            rate_limit: None,
            concurrency: None,
            max_retries: None,
            url: None,
            table: None,
            mode: WriteMode::Append,
            key: vec![],
            file_size_mb: None,
            commit_objects: None,
            commit_interval: None,
            compression: ParquetCompression::Zstd,
            s3: None,
            partition_by: Vec::new(),
            versions: None,
            purpose: TablePurpose::All,
            table_kind: TableKind::Data,
            on_type_conflict: TypeConflict::Text,
            parallelism: None,
        }
    }
}

/// Runs kept for rollback when `versions` is not set.
pub const DEFAULT_VERSIONS: u32 = 7;

/// A Delta table's Parquet files are closed at this size (MiB), as Delta Lake's own writers do.
pub const DEFAULT_FILE_SIZE_MB: u64 = 128;
/// A Delta commit holds at most this many objects...
pub const DEFAULT_COMMIT_OBJECTS: usize = 1000;
/// ... and is made at least this often while a run loads.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(60);

/// What a value that its column's type cannot hold does (an `id` column of integers meets `A-17`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TypeConflict {
    /// The column becomes text; the values already in it keep their text form.
    #[default]
    Text,
    /// The object fails with the column, line and value; nothing of it is loaded.
    Fail,
}

/// How a Delta table's Parquet files are compressed.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ParquetCompression {
    /// Zstandard (level 3): smaller files than snappy for about the same write speed.
    #[default]
    Zstd,
    /// Snappy, the codec most Parquet readers default to.
    Snappy,
}

/// How a run's rows meet the rows already in a table.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    #[default]
    /// Rows are added to the table.
    Append,
    /// The table becomes exactly what the run loaded.
    Replace,
    /// Rows replace the rows with the same `key`, others are added.
    Merge,
}

/// What kind of sink a dataflow writes to.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// Rows of a table in SQLite or PostgreSQL.
    #[default]
    Tables,
    /// Objects created or updated through Stripe's API.
    Stripe,
    /// A sink the program embedding Sluice registered by name (see [`crate::embed`]).
    Custom,
}

impl SinkConfig {
    /// The sink registered under `name` by the program embedding Sluice.
    pub fn custom(name: impl Into<String>) -> SinkConfig {
        SinkConfig { kind: SinkKind::Custom, name: Some(name.into()), ..SinkConfig::default() }
    }

    /// A table in the database at `url` (`sqlite://PATH`, `postgres://USER@HOST/DATABASE`).
    pub fn table(url: impl Into<String>, table: impl Into<String>) -> SinkConfig {
        SinkConfig { url: Some(url.into()), table: Some(table.into()), ..SinkConfig::default() }
    }
}

/// The database a sink or the state store uses, from its URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A database file, created where missing.
    Sqlite(PathBuf),
    /// A PostgreSQL server: the URL as written (`postgres://user:password@host:port/database?options`).
    Postgres(String),
}

impl DatabaseUrl {
    /// The database's kind, as the dataflow list shows it.
    pub fn kind(&self) -> &'static str {
        match self {
            DatabaseUrl::Sqlite(_) => "sqlite",
            DatabaseUrl::Postgres(_) => "postgres",
        }
    }
}

/// Where a tables sink keeps its tables: a database, or a Delta Lake location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkUrl {
    /// A SQLite or PostgreSQL database.
    Database(DatabaseUrl),
    /// A location of Delta tables, a table per dataflow's table.
    Delta(DeltaRoot),
}

/// Where a sink's Delta tables live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeltaRoot {
    /// A folder (`delta+file://PATH`).
    Folder(PathBuf),
    /// A bucket's folder (`delta+s3://BUCKET/PREFIX`).
    S3 {
        /// The bucket.
        bucket: String,
        /// The folder, without its slashes; empty for the bucket's top.
        prefix: String,
        /// How the bucket is reached.
        access: crate::aws::S3Access,
    },
}

impl std::fmt::Display for DeltaRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeltaRoot::Folder(path) => write!(f, "delta+file://{}", path.display()),
            DeltaRoot::S3 { bucket, prefix, .. } if prefix.is_empty() => write!(f, "delta+s3://{bucket}"),
            DeltaRoot::S3 { bucket, prefix, .. } => write!(f, "delta+s3://{bucket}/{prefix}"),
        }
    }
}

impl SinkUrl {
    /// The sink's kind, as the dataflow list shows it.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkUrl::Database(database) => database.kind(),
            SinkUrl::Delta(_) => "delta",
        }
    }
}

impl std::fmt::Display for SinkUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkUrl::Database(database) => database.fmt(f),
            SinkUrl::Delta(root) => root.fmt(f),
        }
    }
}

/// Shows where the database is without its password: `postgres://user@host:5432/db`.
impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "{}", path.display()),
            DatabaseUrl::Postgres(url) => f.write_str(&crate::pg::redact(url)),
        }
    }
}

/// When a dataflow runs under the daemon.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Schedule {
    /// Once a day, at a time of day (`HH:MM`) or at midnight.
    #[default]
    Daily,
    /// Once a day at a time of day, in the schedule's time zone.
    DailyAt {
        /// The hour, 0 to 23.
        hour: u8,
        /// The minute, 0 to 59.
        minute: u8,
    },
    /// At every multiple of this since the Unix epoch.
    Every(Duration),
    /// A cron expression: five fields, or six with seconds first (`*/30 * * * * *`).
    Cron(String),
    /// Only when asked.
    Manual,
}

fn schedule<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Schedule, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_schedule(&text).map_err(serde::de::Error::custom)
}

/// Reads `daily`, `daily at HH:MM`, `every DURATION`, `manual` or a cron expression (five fields, or six
/// with seconds); the expression itself is checked when the configuration is (see `Config::check`).
pub fn parse_schedule(text: &str) -> Result<Schedule, String> {
    let text = text.trim();
    let invalid = || {
        format!(
            "schedule `{text}` is not one of: `daily`, `daily at HH:MM`, `every 6h`, `manual`, or a cron expression like `0 3 * * *`"
        )
    };
    if text == "daily" {
        return Ok(Schedule::Daily);
    }
    if text == "manual" {
        return Ok(Schedule::Manual);
    }
    if let Some(at) = text.strip_prefix("daily at ") {
        let (hour, minute) = super::daemon::parse_time_of_day(at).map_err(|_| invalid())?;
        return Ok(Schedule::DailyAt { hour, minute });
    }
    if let Some(every) = text.strip_prefix("every ") {
        let interval = humantime::parse_duration(every.trim()).map_err(|_| invalid())?;
        if interval < Duration::from_secs(60) {
            return Err(format!("schedule `{text}`: the shortest interval is 1 minute"));
        }
        return Ok(Schedule::Every(interval));
    }
    let fields: Vec<&str> = text.split_whitespace().collect();
    let cron_like = matches!(fields.len(), 5 | 6)
        && fields.iter().all(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || "*/,-?".contains(c)));
    if cron_like { Ok(Schedule::Cron(text.to_string())) } else { Err(invalid()) }
}

/// Reads a cron expression of five fields, or six with seconds first.
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expression)
        .map_err(|e| format!("`{expression}` is not a cron expression Sluice can run: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert_eq!(parse_schedule("daily"), Ok(Schedule::Daily));
        assert_eq!(parse_schedule("daily at 03:30"), Ok(Schedule::DailyAt { hour: 3, minute: 30 }));
        assert_eq!(parse_schedule("every 6h"), Ok(Schedule::Every(Duration::from_secs(6 * 3600))));
        assert_eq!(parse_schedule("0 3 * * 1-5"), Ok(Schedule::Cron("0 3 * * 1-5".into())));
        assert_eq!(parse_schedule("*/2 * * * * *"), Ok(Schedule::Cron("*/2 * * * * *".into())));
        assert_eq!(parse_schedule("manual"), Ok(Schedule::Manual));
        for bad in ["hourly", "daily at 25:00", "every 5s", "every soon", "0 3 * *"] {
            assert!(parse_schedule(bad).is_err(), "{bad}");
        }
    }
}
