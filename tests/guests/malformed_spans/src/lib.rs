//! A streaming parser (contract 1.4.0) that hands over a span batch broken in the way its `probe` option
//! names, in its second call, after a good one that kept 2 bytes of its window:
//! - `kept`: nothing broken: one row, the whole window (the 2 bytes kept, then the second chunk);
//! - `past-window`: a span that ends a byte past the window;
//! - `backwards`: a span that ends before it starts;
//! - `overlapping`: a span that starts inside the span of the row before it;
//! - `keep-too-much`: keeps more bytes than the window holds.
//!
//! The SDK checks spans only in debug builds; this plugin is built for release, as a hostile one would be.
//! The host must refuse the broken call, naming the column and row, and keep the good batch before it.

use sluice_plugin_sdk::{FatalError, Options, SpanEmitter, SpanParser, export_span_parser, fatal};

struct MalformedSpans {
    probe: String,
    calls: u32,
}

impl SpanParser for MalformedSpans {
    fn create(mut options: Options) -> Result<Self, FatalError> {
        let probe = options.get("probe").unwrap_or_default();
        options.finish()?;
        Ok(MalformedSpans { probe, calls: 0 })
    }

    fn feed(&mut self, _chunk: &[u8], out: &mut SpanEmitter) -> Result<(), FatalError> {
        self.calls += 1;
        let column = out.column("text");
        let window = out.window_len();
        if self.calls == 1 {
            out.span(column, 0, window);
            out.end_row(1);
            out.keep(2);
            return Ok(());
        }
        match self.probe.as_str() {
            "kept" => out.span(column, 0, window),
            "past-window" => out.span(column, 0, window + 1),
            "backwards" => out.span(column, 5, 2),
            "overlapping" => {
                out.span(column, 0, 4);
                out.end_row(2);
                out.span(column, 3, window);
            }
            "keep-too-much" => {
                out.span(column, 0, window);
                out.keep(100);
            }
            other => return Err(fatal(0, format!("unknown probe `{other}`"))),
        }
        out.end_row(3);
        Ok(())
    }

    fn finish(&mut self, _out: &mut SpanEmitter) -> Result<(), FatalError> {
        Ok(())
    }
}

export_span_parser!(MalformedSpans);
