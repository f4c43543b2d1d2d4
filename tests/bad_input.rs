//! Bad input is harmless: every case gives rows, rejects with line numbers, or a clear error, and the
//! host goes on to parse the next file.

mod support;

use serde_json::json;
use sluice::plugin::PluginError;
use support::{bundled, parse, parse_chunked};

/// After every bad file, a good one still parses with the same plugin.
fn assert_next_file_parses(format: &str) {
    let good: &[u8] = match format {
        "csv" => b"a,b\n1,2\n",
        "json" => b"[{\"a\": 1}]",
        _ => b"{\"a\": 1}\n",
    };
    let outcome = parse(&bundled(format), &[], good);
    assert!(outcome.error.is_none() && outcome.rows.len() == 1, "{format}: {outcome:?}");
}

fn format_error(outcome: &support::Outcome) -> (u64, String) {
    match &outcome.error {
        Some(PluginError::Format { line, message, .. }) => (*line, message.clone()),
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn ragged_csv_rows_are_rejected_with_their_line_never_shifted() {
    let input = b"id,name,city\n1,Ann,Oslo\n2,Bob\n3,Cy,Rome,extra\n4,Dee,Lima\n";
    let outcome = parse(&bundled("csv"), &[], input);
    assert_eq!(
        outcome.rows,
        vec![
            json!({"id": "1", "name": "Ann", "city": "Oslo"}),
            json!({"id": "4", "name": "Dee", "city": "Lima"}),
        ]
    );
    let rejected: Vec<(u64, &str)> = outcome.rejects.iter().map(|r| (r.line, r.reason.as_str())).collect();
    assert_eq!(rejected, vec![(3, "expected 3 fields, found 2"), (4, "expected 3 fields, found 4")]);
    assert_eq!(outcome.rejects[0].raw, "2,Bob");

    let padded = parse(&bundled("csv"), &[("ragged_rows", "pad")], input);
    assert_eq!(padded.rows[1], json!({"id": "2", "name": "Bob", "city": null}));
    assert_eq!(padded.rejects.len(), 1, "a long row is still rejected: {:?}", padded.rejects);
    assert_next_file_parses("csv");
}

#[test]
fn invalid_utf8_rejects_the_row_and_the_rest_loads() {
    let csv = parse(&bundled("csv"), &[], b"a,b\n1,ok\n2,\xff\xfe\n3,fine\n");
    assert_eq!(csv.rows.len(), 2);
    assert_eq!((csv.rejects[0].line, csv.rejects[0].reason.as_str()), (3, "invalid UTF-8 in column `b`"));

    let jsonl = parse(&bundled("jsonl"), &[], b"{\"a\":\"x\"}\n{\"a\":\"\xff\"}\n{\"a\":\"z\"}\n");
    assert_eq!(jsonl.rows.len(), 2);
    assert_eq!(jsonl.rejects[0].line, 2);

    let json = parse(&bundled("json"), &[], b"[{\"a\":\"x\"},\n{\"a\":\"\xff\"}]");
    assert_eq!(format_error(&json).0, 2);
    assert_eq!(json.rows, vec![json!({"a": "x"})], "the record before the error is kept");
    assert_next_file_parses("csv");
    assert_next_file_parses("json");
}

#[test]
fn unterminated_quote_at_end_of_file_rejects_that_record_only() {
    let outcome = parse(&bundled("csv"), &[], b"a,b\n1,2\n3,\"never closed\n4,5\n");
    assert_eq!(outcome.rows, vec![json!({"a": "1", "b": "2"})]);
    assert_eq!(outcome.rejects.len(), 1);
    assert_eq!(outcome.rejects[0].line, 3);
    assert!(outcome.rejects[0].reason.contains("unterminated quoted field"), "{:?}", outcome.rejects);
    assert_next_file_parses("csv");
}

#[test]
fn empty_and_header_only_files_give_no_rows_and_no_error() {
    for format in ["csv", "tsv", "jsonl"] {
        let outcome = parse(&bundled(format), &[], b"");
        assert!(outcome.error.is_none() && outcome.rows.is_empty() && outcome.rejects.is_empty(), "{format}");
    }
    let header_only = parse(&bundled("csv"), &[], b"\xEF\xBB\xBFid,name\r\n");
    assert!(header_only.error.is_none() && header_only.rows.is_empty() && header_only.rejects.is_empty());
    assert_next_file_parses("csv");
}

#[test]
fn zero_byte_json_file_is_a_clear_error() {
    let outcome = parse(&bundled("json"), &[], b"");
    let (_, message) = format_error(&outcome);
    assert!(message.contains("no JSON value"), "{message}");
    assert_next_file_parses("json");
}

#[test]
fn a_50_mb_single_line_parses() {
    let big = "x".repeat(50 << 20);
    let csv = parse(&bundled("csv"), &[], format!("a,b\n1,{big}\n").as_bytes());
    assert!(csv.error.is_none(), "{:?}", csv.error);
    assert_eq!(csv.rows[0]["b"].as_str().map(str::len), Some(50 << 20));

    // A stray quote makes the scanner hand the record to csv-core, which reads it once, chunk by chunk.
    let stray = parse(&bundled("csv"), &[], format!("a,b\n1,5'10\" {big}\n2,ok\n").as_bytes());
    assert!(stray.error.is_none() && stray.rejects.is_empty(), "{:?}", stray.error);
    assert_eq!(stray.rows[0]["b"].as_str().map(str::len), Some((50 << 20) + 6));
    assert_eq!((stray.rows[1]["b"].as_str(), stray.lines[1]), (Some("ok"), 3));

    let jsonl = parse(&bundled("jsonl"), &[], format!("{{\"b\":\"{big}\"}}\n").as_bytes());
    assert!(jsonl.error.is_none(), "{:?}", jsonl.error);
    assert_eq!(jsonl.rows[0]["b"].as_str().map(str::len), Some(50 << 20));

    let json = parse(&bundled("json"), &[], format!("[{{\"b\":\"{big}\"}}]").as_bytes());
    assert!(json.error.is_none(), "{:?}", json.error);
    assert_eq!(json.rows[0]["b"].as_str().map(str::len), Some(50 << 20));
}

#[test]
fn json_nested_10000_levels_deep_is_harmless() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let json = parse(&bundled("json"), &[], deep.as_bytes());
    assert!(format_error(&json).1.contains("invalid JSON"), "{:?}", json.error);

    // JSON Lines reads such a record without recursing (the nested value is kept as JSON text): it loads,
    // and so does the line after it.
    let nested = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let jsonl = parse(&bundled("jsonl"), &[], format!("{{\"a\":{nested}}}\n{{\"a\":2}}\n").as_bytes());
    assert!(jsonl.error.is_none() && jsonl.rejects.is_empty(), "{jsonl:?}");
    assert_eq!(jsonl.rows[0], json!(format!("{{\"a\":{nested}}}\n")));
    assert_eq!(jsonl.rows[1], json!({"a": 2}));
    assert_next_file_parses("json");
    assert_next_file_parses("jsonl");
}

#[test]
fn a_json_value_that_is_not_an_object_is_a_rejected_row() {
    let json = parse(&bundled("json"), &[], b"[{\"a\":1},\n 5,\n \"s\",\n [1,2],\n {\"a\":2}]");
    assert_eq!(json.rows, vec![json!({"a": 1}), json!({"a": 2})]);
    let rejected: Vec<(u64, &str, &str)> =
        json.rejects.iter().map(|r| (r.line, r.reason.as_str(), r.raw.as_str())).collect();
    assert_eq!(
        rejected,
        vec![
            (2, "expected a JSON object, found a number", "5"),
            (3, "expected a JSON object, found a string", "\"s\""),
            (4, "expected a JSON object, found an array", "[1,2]"),
        ]
    );
    let scalar = parse(&bundled("json"), &[], b"42");
    assert!(scalar.error.is_none() && scalar.rows.is_empty() && scalar.rejects.len() == 1);

    let jsonl = parse(&bundled("jsonl"), &[], b"{\"a\":1}\n[1]\n\n  \nnull\n{\"a\":2}\n");
    assert_eq!(jsonl.rows.len(), 2);
    assert_eq!(jsonl.rejects.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 5]);
}

#[test]
fn chunk_boundaries_never_change_the_result() {
    let csv = "\u{feff}id,\"na,me\",note\r\n1,\"multi\r\nline\",\"say \"\"hi\"\"\"\r\n# not a comment\r\n2,x,y\r\n3,short\r\n";
    let jsonl = "{\"a\":\"\\u00e9t\u{e9}\",\"n\":[1,{\"b\":null}]}\n\n{\"a\":1e400}\r\n{bad\n{\"a\":-0}";
    let json = "{\"object\":\"list\",\"data\":[{\"id\":\"cus_1\",\"m\":{\"k\":[true,false]}},\n7,\n{\"id\":\"cus_\\\"2\"}],\"has_more\":false}";
    let cases =
        [("csv", csv, &[][..]), ("jsonl", jsonl, &[][..]), ("json", json, &[("pointer", "/data")][..])];
    for (format, input, options) in cases {
        let plugin = bundled(format);
        let whole = parse(&plugin, options, input.as_bytes());
        assert!(whole.error.is_none(), "{format}: {:?}", whole.error);
        assert!(!whole.rows.is_empty() && !whole.rejects.is_empty(), "{format}: {whole:?}");
        for chunk_size in 1..=7 {
            let chunked = parse_chunked(&plugin, options, input.as_bytes(), chunk_size);
            assert_eq!(
                (&chunked.rows, &chunked.lines),
                (&whole.rows, &whole.lines),
                "{format} in chunks of {chunk_size}"
            );
            assert_eq!(chunked.rejects, whole.rejects, "{format} in chunks of {chunk_size}");
        }
    }
}

#[test]
fn csv_options_shape_the_records() {
    let input = b"exported by a tool\nsecond preamble line\n# comment\nid;amount;note\n 1 ; NA ;x\n2;3.5;\n";
    let options = [
        ("skip_rows", "2"),
        ("delimiter", ";"),
        ("comment", "#"),
        ("trim", "true"),
        ("null_values", "[\"NA\", \"\"]"),
    ];
    let outcome = parse(&bundled("csv"), &options, input);
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    assert_eq!(
        outcome.rows,
        vec![
            json!({"id": "1", "amount": null, "note": "x"}),
            json!({"id": "2", "amount": "3.5", "note": null}),
        ]
    );
    assert_eq!(outcome.lines, vec![5, 6]);

    let named = parse(&bundled("csv"), &[("header", "false"), ("columns", "a,b")], b"1,2\n3,4\n");
    assert_eq!(named.rows, vec![json!({"a": "1", "b": "2"}), json!({"a": "3", "b": "4"})]);
    let unnamed = parse(&bundled("tsv"), &[("header", "false")], b"1\t2\n");
    assert_eq!(unnamed.rows, vec![json!({"column_1": "1", "column_2": "2"})]);
    let escaped = parse(&bundled("csv"), &[("escape", "\\"), ("double_quote", "false")], b"a\n\"x\\\"y\"\n");
    assert_eq!(escaped.rows, vec![json!({"a": "x\"y"})]);
    let duplicate = parse(&bundled("csv"), &[], b"id,id,\n1,2,3\n");
    assert_eq!(duplicate.rows, vec![json!({"id": "1", "id_2": "2", "column_3": "3"})]);
}

#[test]
fn bad_options_are_refused_before_reading() {
    for (format, options) in [
        ("csv", vec![("delimter", ",")]),
        ("csv", vec![("delimiter", ";;")]),
        ("csv", vec![("ragged_rows", "shift")]),
        ("json", vec![("pointer", "data")]),
        ("jsonl", vec![("pointer", "/data")]),
    ] {
        let outcome = parse(&bundled(format), &options, b"");
        let (line, message) = format_error(&outcome);
        assert_eq!(line, 0, "{message}");
        assert!(message.contains("option"), "{format} {options:?}: {message}");
    }
}

#[test]
fn json_types_survive() {
    let input = br#"[{"s":"t","i":-42,"f":2.5,"b":true,"n":null,"o":{"x":[1,"y"]},"big":123456789012345678901234567890}]"#;
    let outcome = parse(&bundled("json"), &[], input);
    assert_eq!(
        outcome.rows[0],
        json!({"s":"t","i":-42,"f":2.5,"b":true,"n":null,"o":{"x":[1,"y"]},
        "big": serde_json::from_str::<serde_json::Value>("123456789012345678901234567890").unwrap()})
    );
    let jsonl = parse(&bundled("jsonl"), &[], &input[1..input.len() - 1]);
    assert_eq!(jsonl.rows, outcome.rows);
}

/// The CSV plugin has two tokenizers: a block scanner for the common dialect and csv-core for the others
/// (a comment character selects csv-core). On the same awkward input, at chunk sizes that cut 64-byte
/// blocks anywhere, both give the same rows, lines and rejects.
#[test]
fn csv_block_scanner_agrees_with_csv_core() {
    let mut input = String::from("id,text,n\r\n");
    let awkward = [
        "plain,3",
        "\"quoted, with comma\",4",
        "\"doubled \"\"quotes\"\" inside\",5",
        "\"multi\nline\r\nfield\",6",
        "5'10\" tall,7",
        "ab\"c\"d mid-field,8",
        "\"closed\"then text,9",
        "",
        "short",
        "too,many,fields,here",
        "\"\",,10",
        "ünïcödé,ok,11",
    ];
    for (i, case) in awkward.iter().cycle().take(200).enumerate() {
        if case.is_empty() {
            input.push_str("\r\n");
        } else {
            input.push_str(&format!("{i},{case}\r\n"));
        }
    }
    input.push_str("999,last line without end,12");
    let csv = bundled("csv");
    let scanned = parse(&csv, &[], input.as_bytes());
    assert!(scanned.error.is_none(), "{:?}", scanned.error);
    assert!(
        scanned.rows.len() > 100 && scanned.rejects.len() > 10,
        "{} rows, {} rejects",
        scanned.rows.len(),
        scanned.rejects.len()
    );
    assert_eq!(scanned.rows[4], json!({"id": "4", "text": "5'10\" tall", "n": "7"}));
    assert_eq!(scanned.rows[5], json!({"id": "5", "text": "ab\"c\"d mid-field", "n": "8"}));
    assert_eq!(scanned.rows[3], json!({"id": "3", "text": "multi\nline\r\nfield", "n": "6"}));
    for chunk_size in [1, 7, 63, 64, 65, 1000] {
        let by_scanner = parse_chunked(&csv, &[], input.as_bytes(), chunk_size);
        let by_csv_core = parse_chunked(&csv, &[("comment", "~")], input.as_bytes(), chunk_size);
        for (name, other) in [("scanner", &by_scanner), ("csv-core", &by_csv_core)] {
            let first_difference = (0..other.rows.len().max(scanned.rows.len())).find(|&i| {
                (other.rows.get(i), other.lines.get(i)) != (scanned.rows.get(i), scanned.lines.get(i))
            });
            assert_eq!(
                first_difference,
                None,
                "{name} in chunks of {chunk_size}: {:?} != {:?}",
                first_difference.map(|i| (other.rows.get(i), other.lines.get(i))),
                first_difference.map(|i| (scanned.rows.get(i), scanned.lines.get(i)))
            );
            let lines = |o: &support::Outcome| {
                o.rejects.iter().map(|r| (r.line, r.reason.clone())).collect::<Vec<_>>()
            };
            assert_eq!(lines(other), lines(&scanned), "{name} in chunks of {chunk_size}");
        }
    }
}
