//! `sluice check`: what can be known of a dataflow before it runs, each step as cheap as it can be made:
//! its plugins load (and its parser and template take their options), its source answers a listing of one page, and
//! its notification queue answers, its databases (and Stripe, for a Stripe sink or source) accept a
//! connection. Nothing is written, and no message is received.

use super::{Runner, SyncError};
use crate::config::{DatabaseUrl, SinkKind, SinkUrl, SourceConfig};
use crate::sink::StripeTarget;
use crate::source::Notifications;
use crate::state::StateStore;
use crate::stripe::StripeClient;

/// Objects `check` lists of a file source: one page.
const PAGE: usize = 100;

/// One thing checked: what, and how it went (a line of detail, or why it failed).
#[derive(Clone, Debug)]
pub struct Checked {
    /// What was checked: `plugin csv`, `source`, `sink sqlite://...`.
    pub what: String,
    /// What it found, or why it failed.
    pub outcome: Result<String, String>,
}

impl Runner<'_> {
    /// Checks the state store, then every step of every dataflow.
    pub fn check(&self) -> Vec<Checked> {
        let config = self.config();
        let state = config.state_database();
        let mut checked = vec![Checked {
            what: format!("state store {state}"),
            outcome: reach_database(&SinkUrl::Database(state.clone())),
        }];
        for (name, dataflow) in &config.dataflows {
            let mut step = |what: String, outcome: Result<String, String>| {
                checked.push(Checked { what: format!("{name}: {what}"), outcome })
            };
            match &dataflow.source {
                SourceConfig::Stripe(source) => {
                    let client = StripeClient::new(source.client_settings());
                    for table in &source.tables {
                        step(format!("Stripe {table}"), self.stripe_answers(client.as_ref(), table));
                    }
                }
                _ => {
                    let format = &dataflow.file_format().plugin;
                    // A parser is made with the dataflow's options, as a run makes one: an option the
                    // plugin does not know (`delimeter`) fails here, not on every object of every run.
                    let options = dataflow.file_format().option_pairs();
                    step(
                        format!("format plugin `{format}`"),
                        self.load_plugin(name, dataflow).map_err(without_dataflow).and_then(|plugin| {
                            // A parser that reads by ranges reads its file as it is made, so there is
                            // no making one without a file.
                            if plugin.reads_by_range() {
                                return Ok(format!(
                                    "loaded ({:?}); it reads files by ranges, so its options are read with the first file",
                                    plugin.compiled_from().0
                                ));
                            }
                            plugin.open("(sluice check)", &options).map_err(|e| e.to_string())?;
                            Ok(format!("loaded ({:?}), options taken", plugin.compiled_from().0))
                        }),
                    );
                    if let Some(template) = &dataflow.template {
                        step(
                            format!("template `{}`", template.plugin),
                            self.load_template(name, dataflow)
                                .map(|_| "loaded, options taken".into())
                                .map_err(without_dataflow),
                        );
                    }
                    let listed =
                        self.build_source(name, dataflow).map_err(without_dataflow).and_then(|source| {
                            let page =
                                self.runtime().block_on(source.list_page(PAGE)).map_err(|e| e.to_string())?;
                            Ok(format!(
                                "{} listed: {} objects on the first page",
                                source.describe(),
                                page.len()
                            ))
                        });
                    step("source".into(), listed);
                    if let SourceConfig::S3(s3) = &dataflow.source
                        && s3.notifications.is_some()
                    {
                        let waiting = self
                            .runtime()
                            .block_on(async { Notifications::connect(s3).await?.waiting().await });
                        step(
                            "notification queue".into(),
                            waiting
                                .map(|n| format!("reachable: about {n} messages waiting"))
                                .map_err(|e| e.to_string()),
                        );
                    }
                }
            }
            if dataflow.sink.kind == SinkKind::Stripe {
                let settings = dataflow.sink.client_settings();
                let target = StripeTarget::of(&dataflow.sink, &settings);
                let client = StripeClient::new(settings);
                step(
                    format!("Stripe {}", target.object()),
                    self.stripe_answers(client.as_ref(), target.object()),
                );
            }
            if dataflow.sink.kind == SinkKind::Custom {
                let registered = dataflow.sink.name.as_deref().unwrap_or_default();
                let found = self.registry().sink(name, dataflow).expect("a custom sink is looked up");
                step(
                    format!("sink custom `{registered}`"),
                    found.map(|_| "registered".into()).map_err(|e| e.message),
                );
            } else {
                let sink = config.sink_database(dataflow);
                step(format!("sink {sink}"), reach_database(&sink));
            }
        }
        checked
    }

    /// Lists one object of `object` from Stripe: the key is accepted and may read it.
    fn stripe_answers(&self, client: Result<&StripeClient, &String>, object: &str) -> Result<String, String> {
        let client = client.map_err(String::clone)?;
        let query = [("limit".to_string(), "1".to_string())];
        self.runtime().block_on(client.get(object, &query)).map_err(|e| e.to_string())?;
        Ok("the key is accepted and lists it".into())
    }
}

/// Connects to a database without writing to it; a SQLite file that is not there yet is made by the
/// first run. A Delta location is checked as a run would open it.
fn reach_database(url: &SinkUrl) -> Result<String, String> {
    match url {
        SinkUrl::Database(DatabaseUrl::Sqlite(path)) if !path.exists() => {
            Ok("not there yet: the first run makes it".into())
        }
        // The place is the step's name already; the message says what went wrong there.
        SinkUrl::Database(database) => {
            StateStore::open_read_only(database).map(|_| "reachable".into()).map_err(|e| e.message)
        }
        SinkUrl::Delta(root) => crate::sink::check_delta_location(root),
    }
}

/// An error without the dataflow's name, which the step's name holds already.
fn without_dataflow(error: SyncError) -> String {
    match error {
        SyncError::Plugin { source, .. } => source.to_string(),
        SyncError::Source { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}
