//! Rejected rows: what a load refused, with the line, the reason and the raw text, as sinks keep them.

/// A row a load refused: by its format plugin, its template or its sink.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RejectedRow {
    /// The 1-based line of the file the row starts on.
    pub line: u64,
    /// Why it was refused.
    pub reason: String,
    /// Up to 1 KiB of the row's raw text.
    pub raw: String,
    /// Which step refused it, and so what its raw text holds.
    pub stage: RejectStage,
}

/// The step of a load that refused a row. It says what the row's raw text is, and so whether the row can
/// be tried again from it (`sluice run --replay-rejects`) without reading its file again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RejectStage {
    /// The format plugin: the raw text is the file's own, which only a new read of the file parses.
    Parse,
    /// The data template: the raw text is the parsed record, as JSON, ready to be mapped again.
    Template,
    /// The sink (Stripe, or a table that cannot hold a value): the raw text is the record as it was to
    /// be written, as JSON, ready to be written again.
    Sink,
}

impl RejectStage {
    /// The name a sink stores it under.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectStage::Parse => "parse",
            RejectStage::Template => "template",
            RejectStage::Sink => "sink",
        }
    }

    /// The stage stored as `name`; `None` for a reject stored before stages were kept.
    pub fn parse(name: &str) -> Option<RejectStage> {
        [RejectStage::Parse, RejectStage::Template, RejectStage::Sink]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}
