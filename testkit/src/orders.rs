//! Order rows as the benchmarks load them: seven columns of the kinds shop exports hold (ids, names,
//! emails, amounts, currencies, timestamps, a quoted note with a comma in every fifth row).

use std::fmt::Write as _;

/// The CSV header's columns.
pub const COLUMNS: [&str; 7] = ["id", "customer", "email", "amount", "currency", "created", "note"];

/// The fields of order `id`, as CSV fields (the note quoted where it holds a comma).
pub fn order(id: u64) -> [String; 7] {
    [
        id.to_string(),
        format!("Customer {}", id % 9973),
        format!("customer{}@example.com", id % 9973),
        format!("{}.{:02}", id % 1000, id % 100),
        ["usd", "eur", "gbp"][(id % 3) as usize].to_string(),
        format!("2026-{:02}-{:02}T{:02}:{:02}:00Z", id % 12 + 1, id % 28 + 1, id % 24, id % 60),
        if id.is_multiple_of(5) { "\"gift, wrapped\"".to_string() } else { String::new() },
    ]
}

/// A CSV object of about `size` bytes whose ids start at `first_id`; its text and row count.
pub fn csv_object(first_id: u64, size: usize) -> (String, u64) {
    let mut text = String::with_capacity(size + 256);
    text.push_str(&COLUMNS.join(","));
    text.push('\n');
    let mut id = first_id;
    while text.len() < size {
        let _ = writeln!(text, "{}", order(id).join(","));
        id += 1;
    }
    (text, id - first_id)
}

/// A CSV object of exactly `rows` rows whose ids start at `first_id`.
pub fn csv_rows(first_id: u64, rows: u64) -> String {
    let mut text = COLUMNS.join(",");
    text.push('\n');
    for id in first_id..first_id + rows {
        let _ = writeln!(text, "{}", order(id).join(","));
    }
    text
}
