//! A dataflow's configuration as the dashboard shows it: its own tables of `connector.toml`, as written
//! (`${VAR}` references unexpanded), with every secret masked, so the page can be read by anyone the
//! daemon serves without handing out a key.

use toml::{Table, Value};

/// What a masked secret shows.
const MASK: &str = "••••••";

/// Parts of a key's name that mark its value as a secret (`api_key`, `secret_access_key`, `token`).
const SECRET_NAMES: [&str; 6] = ["secret", "password", "token", "api_key", "access_key", "credential"];

/// The tables of the dataflow `name` in the configuration text `text`, as TOML, secrets masked; `None`
/// where the text has no such dataflow (or no longer parses).
pub fn masked_dataflow(text: &str, name: &str) -> Option<String> {
    let mut file: Table = text.parse().ok()?;
    let Value::Table(dataflows) = file.remove("dataflows")? else { return None };
    let Value::Table(mut dataflow) = dataflows.get(name)?.clone() else { return None };
    mask_table(&mut dataflow);
    let mut shown = Table::new();
    shown.insert(
        "dataflows".into(),
        Value::Table(Table::from_iter([(name.to_string(), Value::Table(dataflow))])),
    );
    toml::to_string(&shown).ok()
}

fn mask_table(table: &mut Table) {
    for (key, value) in table.iter_mut() {
        let secret = SECRET_NAMES.iter().any(|part| key.to_ascii_lowercase().contains(part));
        mask_value(value, secret);
    }
}

fn mask_value(value: &mut Value, secret: bool) {
    match value {
        // A reference to the variable that holds a secret says where it is, not what: it is shown.
        Value::String(text) if secret && is_variable_reference(text) => {}
        Value::String(text) if secret => *text = MASK.to_string(),
        Value::String(text) => *text = without_password(text),
        Value::Table(table) => mask_table(table),
        Value::Array(items) => items.iter_mut().for_each(|item| mask_value(item, secret)),
        _ => {}
    }
}

/// Whether `text` is `${NAME}` and nothing else (a fallback after `:-` could be the secret itself).
fn is_variable_reference(text: &str) -> bool {
    text.strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .is_some_and(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// A URL with the password of its user info masked (`postgres://sluice:••••••@db/sluice`).
fn without_password(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else { return text.to_string() };
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return text.to_string() };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{}{user}:{MASK}{}", &text[..scheme_end + 3], &rest[at..]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_passwords_in_urls_are_masked_and_the_rest_shown_as_written() {
        let text = r#"
[dataflows.Catalog]
source = { type = "s3", bucket = "exports", secret_access_key = "wJalrXUtnFEMI", access_key_id = "${AWS_KEY_ID}" }
format = { plugin = "csv" }
[dataflows.Catalog.sink]
type = "stripe"
api_key = "sk_test_abc"
url = "postgres://sluice:hunter2@db:5432/sluice"
key = ["id"]
session_token = "${AWS_SESSION_TOKEN:-sk_test_fallback}"
[dataflows.Other]
sink = { table = "other" }
"#;
        let shown = masked_dataflow(text, "Catalog").unwrap();
        for secret in ["wJalrXUtnFEMI", "sk_test_abc", "hunter2", "sk_test_fallback"] {
            assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
        }
        assert!(shown.contains("${AWS_KEY_ID}"), "{shown}");
        assert!(shown.contains("postgres://sluice:••••••@db:5432/sluice"), "{shown}");
        assert!(shown.contains("bucket = \"exports\"") && shown.contains("key = [\"id\"]"), "{shown}");
        assert!(!shown.contains("Other"), "{shown}");
        assert_eq!(masked_dataflow(text, "Nope"), None);
    }
}
