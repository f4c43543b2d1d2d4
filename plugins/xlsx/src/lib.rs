//! Excel workbooks (.xlsx), read with calamine: one sheet, its rows the records and a header row their
//! column names.
//!
//! Options:
//! - `sheet`: the sheet's name, or its 1-based position among the sheets; the first sheet where absent.
//! - `header_row`: the 1-based row holding the column names (1 where absent); the rows above it are
//!   skipped. `0` means no header: columns are named by their letters (`A`, `B`, ...). A column with an
//!   empty header cell is named by its letter too, and a name that comes twice gets its letter after it.
//!
//! Values: numbers as integers where they are whole (as Excel shows them) and floats otherwise; text; booleans;
//! dates and date-times as RFC 3339 local date-times (`2026-11-05T09:30:00`, with milliseconds where there are
//! any; a workbook names no time zone); times of day as `09:30:00`; durations as `[h]:mm:ss`; error cells as
//! their text (`#DIV/0!`). Empty cells are null and empty rows are skipped. A record's line is its row number.
//!
//! A workbook is a ZIP archive whose directory is at its end: the plugin reads it by ranges (contract 1.2.0),
//! and streams the sheet's cells, so memory holds the shared strings and one row whatever the sheet's size.

use calamine::{DataRef, Reader, Xlsx, XlsxCellReader};
use sluice_plugin_sdk::{
    Emitter, FatalError, Options, RangeInput, RangeReader, RangedParser, Value, as_text,
    export_ranged_parser, fatal,
};
use std::collections::HashMap;
use std::io::BufReader;

/// Rows handed on per call.
const ROWS_PER_CALL: usize = 4096;
/// Bytes asked of the host per read.
const READ: usize = 256 * 1024;

type Workbook = Xlsx<BufReader<RangeReader>>;

struct XlsxFile {
    /// The sheet's cells. It borrows the workbook `_workbook` owns, so it is declared first: fields drop
    /// in order, and the borrow ends before the workbook is freed.
    cells: XlsxCellReader<'static, BufReader<RangeReader>>,
    /// The row being gathered: its 0-based number and its cells, which may borrow the workbook's shared
    /// strings (so it too is declared before the workbook).
    row: Option<(u32, Vec<(u32, Cell)>)>,
    _workbook: OwnedWorkbook,
    /// The 0-based row of the header, where there is one.
    header: Option<u32>,
    /// Column names by 0-based column, from the header row.
    names: HashMap<u32, String>,
}

/// The workbook, at a fixed place on the heap for as long as the parser lives, so the cell reader can
/// borrow it across calls (calamine's reader borrows the workbook it reads from).
struct OwnedWorkbook(*mut Workbook);

impl Drop for OwnedWorkbook {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::into_raw` in `create` and is freed only here, after the cell
        // reader and the row that borrow it have dropped (fields drop in order, and they come before it).
        drop(unsafe { Box::from_raw(self.0) });
    }
}

/// A cell's value: owned, or a shared string of the workbook.
enum Cell {
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Text(String),
    /// One of the workbook's shared strings, as it holds it.
    Shared(&'static str),
}

impl RangedParser for XlsxFile {
    fn create(mut options: Options, input: RangeInput) -> Result<Self, FatalError> {
        let sheet = options.get("sheet");
        let header_row = match options.get("header_row") {
            None => 1,
            Some(row) => row.trim().parse::<u32>().map_err(|_| {
                fatal(
                    0,
                    format!(
                        "option `header_row` is `{row}`; expected a row number (1 for the first, 0 for none)"
                    ),
                )
            })?,
        };
        options.finish()?;
        let workbook: Workbook = Xlsx::new(BufReader::with_capacity(READ, input.reader()))
            .map_err(|e| fatal(0, format!("not an Excel workbook (.xlsx): {e}")))?;
        let names = workbook.sheet_names();
        let name = match sheet {
            None => names.first().cloned().ok_or_else(|| fatal(0, "the workbook has no sheets"))?,
            Some(wanted) if names.contains(&wanted) => wanted,
            Some(wanted) => match wanted.trim().parse::<usize>() {
                Ok(position) if (1..=names.len()).contains(&position) => names[position - 1].clone(),
                _ => {
                    return Err(fatal(
                        0,
                        format!(
                            "option `sheet` is `{wanted}`: no sheet has that name or position; the sheets are {}",
                            names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            },
        };
        let workbook = OwnedWorkbook(Box::into_raw(Box::new(workbook)));
        // SAFETY: the workbook stays where it is until `OwnedWorkbook` drops, after `cells` (see `XlsxFile`);
        // nothing else touches it meanwhile.
        let cells = unsafe { &mut *workbook.0 }
            .worksheet_cells_reader(&name)
            .map_err(|e| fatal(0, format!("sheet `{name}` cannot be read: {e}")))?;
        Ok(XlsxFile {
            cells,
            _workbook: workbook,
            header: header_row.checked_sub(1),
            names: HashMap::new(),
            row: None,
        })
    }

    fn next(&mut self, out: &mut Emitter) -> Result<bool, FatalError> {
        let mut rows = 0;
        while rows < ROWS_PER_CALL {
            let line = self.row.as_ref().map_or(0, |(row, _)| u64::from(*row) + 1);
            let cell =
                self.cells.next_cell().map_err(|e| fatal(line, format!("the sheet cannot be read: {e}")))?;
            let Some(cell) = cell else {
                self.end_row(out);
                return Ok(false);
            };
            let (row, column) = cell.get_position();
            let Some(value) = owned(cell.get_value()) else { continue };
            if self.row.as_ref().is_some_and(|(current, _)| *current != row) {
                rows += usize::from(self.end_row(out));
            }
            self.row.get_or_insert_with(|| (row, Vec::new())).1.push((column, value));
        }
        Ok(true)
    }
}

impl XlsxFile {
    /// Hands on the row gathered (or takes the header's names from it); `true` where it was a record.
    fn end_row(&mut self, out: &mut Emitter) -> bool {
        let Some((row, cells)) = self.row.take() else { return false };
        match self.header {
            Some(header) if row < header => false,
            Some(header) if row == header => {
                for (column, value) in cells {
                    let text = match value {
                        Cell::Text(text) => text.trim().to_string(),
                        Cell::Shared(text) => text.trim().to_string(),
                        Cell::Integer(i) => i.to_string(),
                        Cell::Float(f) => f.to_string(),
                        Cell::Boolean(b) => b.to_string(),
                    };
                    let name = if text.is_empty() { letters(column) } else { text };
                    let name = if self.names.values().any(|taken| *taken == name) {
                        format!("{name} {}", letters(column))
                    } else {
                        name
                    };
                    self.names.insert(column, name);
                }
                false
            }
            _ => {
                for (column, value) in &cells {
                    let index = match self.names.get(column) {
                        Some(name) => out.batch().column(name),
                        None => out.batch().column(&letters(*column)),
                    };
                    let value = match value {
                        Cell::Integer(i) => Value::Integer(*i),
                        Cell::Float(f) => Value::Float(*f),
                        Cell::Boolean(b) => Value::Boolean(*b),
                        Cell::Text(text) => Value::Text(text),
                        Cell::Shared(text) => Value::Text(text),
                    };
                    out.batch().push(index, value);
                }
                out.end_row(u64::from(row) + 1);
                true
            }
        }
    }
}

/// A cell's value, kept for its row; `None` for an empty cell.
fn owned(value: &DataRef<'static>) -> Option<Cell> {
    Some(match value {
        DataRef::Empty => return None,
        DataRef::Int(i) => Cell::Integer(*i),
        DataRef::Float(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
            Cell::Integer(*f as i64)
        }
        DataRef::Float(f) => Cell::Float(*f),
        DataRef::Bool(b) => Cell::Boolean(*b),
        DataRef::String(text) | DataRef::DateTimeIso(text) | DataRef::DurationIso(text) => {
            Cell::Text(text.clone())
        }
        DataRef::SharedString(text) => Cell::Shared(text),
        DataRef::Error(error) => Cell::Text(error.to_string()),
        DataRef::DateTime(moment) if moment.is_duration() => Cell::Text(duration(moment.as_f64())),
        DataRef::DateTime(moment) => {
            let (year, month, day, hour, minute, second, milli) = moment.to_ymd_hms_milli();
            let second_of_day = u64::from(hour) * 3600 + u64::from(minute) * 60 + u64::from(second);
            let nanos = u32::from(milli) * 1_000_000;
            let unit = if milli == 0 { as_text::TimeUnit::Second } else { as_text::TimeUnit::Millisecond };
            let mut text = String::with_capacity(23);
            // A serial number under one day is a time of day with no date (Excel's time cells).
            if moment.as_f64() >= 1.0 {
                text.push_str(&format!("{year:04}-{month:02}-{day:02}"));
            }
            as_text::write_clock(&mut text, second_of_day, nanos, unit).expect("a String takes any text");
            if moment.as_f64() < 1.0 {
                text.remove(0);
            }
            Cell::Text(text)
        }
    })
}

/// A duration of `days` as `[h]:mm:ss`, hours past 24 kept, to the nearest second.
fn duration(days: f64) -> String {
    let seconds = (days * 86_400.0).round() as i64;
    let sign = if seconds < 0 { "-" } else { "" };
    let seconds = seconds.unsigned_abs();
    format!("{sign}{}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

/// A 0-based column's letters: `A`, ..., `Z`, `AA`, ...
fn letters(column: u32) -> String {
    let mut letters = Vec::new();
    let mut rest = column + 1;
    while rest > 0 {
        rest -= 1;
        letters.push(b'A' + (rest % 26) as u8);
        rest /= 26;
    }
    letters.reverse();
    String::from_utf8(letters).expect("ASCII letters")
}

export_ranged_parser!(XlsxFile);

#[cfg(test)]
mod tests {
    use super::{XlsxFile, duration, letters};
    use serde_json::json;
    use sluice_plugin_sdk::testing::parse_ranged;
    use std::io::Write;

    /// A workbook of two sheets, written part by part as Excel lays one out: shared strings, a style with
    /// a date format (14, `m/d/yyyy`) and one with a time format (21, `h:mm:ss`).
    fn workbook() -> Vec<u8> {
        let parts = [
            (
                "[Content_Types].xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>"#,
            ),
            (
                "_rels/.rels",
                r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
            ),
            (
                "xl/workbook.xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Cover" sheetId="1" r:id="rId1"/><sheet name="Orders" sheetId="2" r:id="rId2"/></sheets></workbook>"#,
            ),
            (
                "xl/_rels/workbook.xml.rels",
                r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet2.xml"/><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/><Relationship Id="rId4" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#,
            ),
            (
                "xl/sharedStrings.xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>id</t></si><si><t>name</t></si><si><t>Mug &amp; saucer</t></si><si><t>name</t></si></sst>"#,
            ),
            (
                "xl/styles.xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><cellXfs count="3"><xf numFmtId="0"/><xf numFmtId="14" applyNumberFormat="1"/><xf numFmtId="21" applyNumberFormat="1"/></cellXfs></styleSheet>"#,
            ),
            (
                "xl/worksheets/sheet1.xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Cover</t></is></c></row></sheetData></worksheet>"#,
            ),
            (
                "xl/worksheets/sheet2.xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>
<row r="1"><c r="A1" t="inlineStr"><is><t>Orders, November</t></is></c></row>
<row r="2"><c r="A2" t="s"><v>0</v></c><c r="B2" t="s"><v>1</v></c><c r="C2" t="inlineStr"><is><t>price</t></is></c><c r="D2" t="inlineStr"><is><t>paid</t></is></c><c r="E2" t="inlineStr"><is><t>day</t></is></c><c r="F2" t="inlineStr"><is><t>at</t></is></c><c r="H2" t="s"><v>3</v></c></row>
<row r="3"><c r="A3"><v>1</v></c><c r="B3" t="s"><v>2</v></c><c r="C3"><v>12.5</v></c><c r="D3" t="b"><v>1</v></c><c r="E3" s="1"><v>46331</v></c><c r="F3" s="2"><v>0.5208333333333334</v></c><c r="G3"><v>7</v></c><c r="H3" t="e"><v>#DIV/0!</v></c></row>
<row r="5"><c r="A5"><v>2</v></c><c r="C5"><v>3.0</v></c><c r="E5" s="1"><v>46331.75</v></c></row>
</sheetData></worksheet>"#,
            ),
        ];
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored =
            zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, text) in parts {
            writer.start_file(name, stored).unwrap();
            writer.write_all(text.as_bytes()).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn a_sheet_by_name_or_position_under_its_header_row() {
        for sheet in ["Orders", "2"] {
            let outcome =
                parse_ranged::<XlsxFile>(&[("sheet", sheet), ("header_row", "2")], workbook()).unwrap();
            assert_eq!(
                outcome.records,
                vec![
                    json!({"id": 1, "name": "Mug & saucer", "price": 12.5, "paid": true, "day": "2026-11-05T00:00:00",
                           "at": "12:30:00", "G": 7, "name H": "#DIV/0!"}),
                    json!({"id": 2, "name": null, "price": 3, "paid": null, "day": "2026-11-05T18:00:00",
                           "at": null, "G": null, "name H": null}),
                ],
                "{sheet}"
            );
            assert_eq!(outcome.lines, vec![3, 5], "rows keep their numbers; the empty row 4 is skipped");
        }
        let first = parse_ranged::<XlsxFile>(&[("header_row", "0")], workbook()).unwrap();
        assert_eq!(first.records, vec![json!({"A": "Cover"})]);
    }

    #[test]
    fn a_missing_sheet_a_bad_option_and_a_file_that_is_no_workbook_are_refused() {
        let error = parse_ranged::<XlsxFile>(&[("sheet", "3")], workbook()).unwrap_err();
        assert!(error.message.contains("the sheets are `Cover`, `Orders`"), "{}", error.message);
        let error = parse_ranged::<XlsxFile>(&[("header_row", "first")], workbook()).unwrap_err();
        assert!(error.message.contains("option `header_row` is `first`"), "{}", error.message);
        let error = parse_ranged::<XlsxFile>(&[], b"id,name\n1,a\n".to_vec()).unwrap_err();
        assert!(error.message.contains("not an Excel workbook (.xlsx)"), "{}", error.message);
    }

    #[test]
    fn columns_are_named_by_their_letters_and_durations_keep_their_hours() {
        assert_eq!([0, 25, 26, 701, 702].map(letters), ["A", "Z", "AA", "ZZ", "AAA"]);
        assert_eq!(duration(1.5), "36:00:00");
        assert_eq!(duration(-0.25), "-6:00:00");
    }
}
