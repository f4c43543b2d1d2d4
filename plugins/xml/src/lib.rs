//! XML files, streamed with quick-xml: the elements at the path `record` (`/catalog/product`) are the
//! records.
//!
//! - A record's attributes and child elements become its columns, by name (without a namespace prefix).
//! - A child holding only text is that text; one with attributes or children of its own is a JSON object:
//!   its attributes as `@name`, its text as `#text`, its children by name.
//! - A name that comes more than once in one element is a JSON array of its values.
//! - Text directly in a record (mixed content) is the column `#text`. Whitespace between elements is not
//!   text.
//!
//! The plugin reads the file by ranges (contract 1.2.0), front to back, so the parser's state lives between
//! calls: each call returns the next records, never holding more than one record and a read buffer. Each
//! record's line is the line its start tag begins on.

use quick_xml::events::{BytesStart, Event};
use serde_json::{Map, Value as Json};
use sluice_plugin_sdk::{
    Emitter, FatalError, Options, RangeInput, RangeReader, RangedParser, Value, export_ranged_parser, fatal,
};
use std::io::BufReader;

/// Records handed on per call.
const RECORDS_PER_CALL: usize = 4096;
/// Bytes asked of the host per read.
const READ: usize = 256 * 1024;

struct XmlFile {
    reader: quick_xml::Reader<BufReader<RangeReader>>,
    buffer: Vec<u8>,
    records: Records,
}

/// Where the reader stands among the elements, and the record being read.
struct Records {
    /// The names of the record path, from the root.
    path: Vec<String>,
    /// The names of the open elements, from the root.
    open: Vec<String>,
    /// The record being read, where one is open: its line and its element.
    record: Option<(u64, Element)>,
    /// Elements open inside the record, innermost last.
    inside: Vec<(String, Element)>,
    /// The line the reader is on: one more than the newlines read so far.
    line: u64,
}

/// An element read so far: its attributes, its children in order, its text.
#[derive(Default)]
struct Element {
    attributes: Vec<(String, String)>,
    children: Vec<(String, Element)>,
    text: String,
}

impl RangedParser for XmlFile {
    fn create(mut options: Options, input: RangeInput) -> Result<Self, FatalError> {
        let record = options.get("record").ok_or_else(|| {
            fatal(0, "option `record` is required: the path of the elements that are records, like \"/catalog/product\"")
        })?;
        options.finish()?;
        let path: Vec<String> =
            record.split('/').filter(|part| !part.is_empty()).map(str::to_string).collect();
        if !record.starts_with('/') || path.is_empty() {
            return Err(fatal(
                0,
                format!(
                    "option `record` is `{record}`; expected a path from the root, like \"/catalog/product\""
                ),
            ));
        }
        let mut reader = quick_xml::Reader::from_reader(BufReader::with_capacity(READ, input.reader()));
        reader.config_mut().check_end_names = true;
        let records = Records { path, open: Vec::new(), record: None, inside: Vec::new(), line: 1 };
        Ok(XmlFile { reader, buffer: Vec::new(), records })
    }

    fn next(&mut self, out: &mut Emitter) -> Result<bool, FatalError> {
        let mut records = 0;
        while records < RECORDS_PER_CALL {
            self.buffer.clear();
            let state = &mut self.records;
            let line = state.line;
            let event = self
                .reader
                .read_event_into(&mut self.buffer)
                .map_err(|e| fatal(line, format!("not well-formed XML: {e}")))?;
            // Newlines sit only inside the bytes of events (text, tags, comments), never in the `<` and `>`
            // around them: counting them in each event keeps the line.
            let newlines = match &event {
                Event::Eof => 0,
                other => newlines(other),
            };
            match event {
                Event::Start(start) => state.start(&start, line)?,
                Event::Empty(start) => {
                    state.start(&start, line)?;
                    records += usize::from(state.end(out));
                }
                Event::End(_) => records += usize::from(state.end(out)),
                Event::Text(text) => {
                    let text = text
                        .xml_content(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| fatal(line, format!("bad text: {e}")))?;
                    state.text(&text);
                }
                Event::CData(data) => {
                    let data = data.decode().map_err(|e| fatal(line, format!("bad CDATA: {e}")))?;
                    state.text(&data);
                }
                Event::GeneralRef(reference) => {
                    let name = reference.decode().map_err(|e| fatal(line, format!("bad reference: {e}")))?;
                    let resolved = match reference.resolve_char_ref() {
                        Ok(Some(character)) => character.to_string(),
                        Ok(None) => match quick_xml::escape::resolve_xml_entity(&name) {
                            Some(text) => text.to_string(),
                            None => return Err(fatal(line, format!("unknown entity `&{name};`"))),
                        },
                        Err(e) => {
                            return Err(fatal(line, format!("bad character reference `&{name};`: {e}")));
                        }
                    };
                    state.text(&resolved);
                }
                Event::Eof => {
                    if let Some(open) = state.open.last() {
                        return Err(fatal(line, format!("the file ends inside <{open}>")));
                    }
                    return Ok(false);
                }
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            }
            state.line += newlines;
        }
        Ok(true)
    }
}

impl Records {
    fn start(&mut self, start: &BytesStart<'_>, line: u64) -> Result<(), FatalError> {
        let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
        let mut element = Element::default();
        for attribute in start.attributes() {
            let attribute = attribute.map_err(|e| fatal(line, format!("bad attribute in <{name}>: {e}")))?;
            if attribute.key.as_ref().starts_with(b"xmlns") {
                continue;
            }
            let key = String::from_utf8_lossy(attribute.key.local_name().as_ref()).into_owned();
            let value = attribute
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| fatal(line, format!("bad attribute `{key}` in <{name}>: {e}")))?;
            element.attributes.push((key, value.into_owned()));
        }
        self.open.push(name.clone());
        if self.record.is_some() {
            self.inside.push((name, element));
        } else if self.open == self.path {
            self.record = Some((line, element));
        }
        Ok(())
    }

    /// Closes the innermost element; `true` where it was a record, now handed on.
    fn end(&mut self, out: &mut Emitter) -> bool {
        self.open.pop();
        if let Some((name, element)) = self.inside.pop() {
            match self.inside.last_mut() {
                Some((_, parent)) => parent.children.push((name, element)),
                None => self.record.as_mut().expect("inside a record").1.children.push((name, element)),
            }
            return false;
        }
        let Some((line, record)) = self.record.take() else { return false };
        emit(line, record, out);
        true
    }

    fn text(&mut self, text: &str) {
        let element = match self.inside.last_mut() {
            Some((_, element)) => element,
            None => match self.record.as_mut() {
                Some((_, record)) => record,
                None => return,
            },
        };
        element.text.push_str(text);
    }
}

/// Hands a record on: attributes, then children (a name given more than once as an array), then text.
fn emit(line: u64, record: Element, out: &mut Emitter) {
    for (name, value) in record.attributes {
        let column = out.batch().column(&name);
        out.batch().push(column, Value::Text(&value));
    }
    for (name, values) in grouped(record.children) {
        let column = out.batch().column(&name);
        let json = match <[Element; 1]>::try_from(values) {
            Ok([only]) if only.attributes.is_empty() && only.children.is_empty() => {
                out.batch().push(column, Value::Text(&only.text));
                continue;
            }
            Ok([only]) => json(only),
            Err(many) => Json::Array(many.into_iter().map(json).collect()),
        };
        out.batch().push(column, Value::Json(&json.to_string()));
    }
    if !record.text.trim().is_empty() {
        let column = out.batch().column("#text");
        out.batch().push(column, Value::Text(record.text.trim()));
    }
    out.end_row(line);
}

/// Children by name, in the order each name first comes.
fn grouped(children: Vec<(String, Element)>) -> Vec<(String, Vec<Element>)> {
    let mut groups: Vec<(String, Vec<Element>)> = Vec::new();
    for (name, element) in children {
        match groups.iter_mut().find(|(group, _)| *group == name) {
            Some((_, elements)) => elements.push(element),
            None => groups.push((name, vec![element])),
        }
    }
    groups
}

/// An element as JSON: its text alone where it has nothing else, else an object.
fn json(element: Element) -> Json {
    if element.attributes.is_empty() && element.children.is_empty() {
        return Json::String(element.text);
    }
    let mut object = Map::new();
    for (name, value) in element.attributes {
        object.insert(format!("@{name}"), Json::String(value));
    }
    for (name, values) in grouped(element.children) {
        let value = match <[Element; 1]>::try_from(values) {
            Ok([only]) => json(only),
            Err(many) => Json::Array(many.into_iter().map(json).collect()),
        };
        object.insert(name, value);
    }
    if !element.text.trim().is_empty() {
        object.insert("#text".into(), Json::String(element.text.trim().to_string()));
    }
    Json::Object(object)
}

fn newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

export_ranged_parser!(XmlFile);

#[cfg(test)]
mod tests {
    use super::XmlFile;
    use serde_json::json;
    use sluice_plugin_sdk::testing::parse_ranged;

    const CATALOG: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a catalogue -->
<catalog xmlns="urn:example" version="2">
  <product id="p1" status="active">
    <name>Mug &amp; saucer</name>
    <price currency="EUR">12.50</price>
    <tag>kitchen</tag>
    <tag>gift</tag>
    <dimensions><width>8</width><height>10</height></dimensions>
  </product>
  <product id="p2"><name><![CDATA[<Plate>]]></name><empty/></product>
  <promo><product id="not-a-record"/></promo>
</catalog>
"#;

    #[test]
    fn the_elements_at_the_path_are_records_with_attributes_and_children_as_columns() {
        let outcome =
            parse_ranged::<XmlFile>(&[("record", "/catalog/product")], CATALOG.as_bytes().to_vec()).unwrap();
        assert_eq!(
            outcome.records,
            vec![
                json!({
                    "id": "p1",
                    "status": "active",
                    "name": "Mug & saucer",
                    "price": {"@currency": "EUR", "#text": "12.50"},
                    "tag": ["kitchen", "gift"],
                    "dimensions": {"width": "8", "height": "10"},
                    "empty": null,
                }),
                // Columns a record lacks are null in it, as in any batch.
                json!({
                    "id": "p2",
                    "status": null,
                    "name": "<Plate>",
                    "price": null,
                    "tag": null,
                    "dimensions": null,
                    "empty": "",
                }),
            ]
        );
        assert_eq!(outcome.lines, vec![4, 11]);
    }

    #[test]
    fn malformed_xml_stops_at_its_line_and_options_are_checked() {
        let broken = "<catalog>\n<product id=\"1\"/>\n<product>\n</catalog>\n";
        let error = parse_ranged::<XmlFile>(&[("record", "/catalog/product")], broken.as_bytes().to_vec())
            .unwrap_err();
        assert_eq!(error.line, 4, "{}", error.message);
        assert!(error.message.contains("not well-formed XML"), "{}", error.message);
        assert_eq!(error.completed.batches.len(), 1, "the record before the error is kept");
        assert!(parse_ranged::<XmlFile>(&[], b"<a/>".to_vec()).is_err());
        assert!(parse_ranged::<XmlFile>(&[("record", "product")], b"<a/>".to_vec()).is_err());
    }
}
