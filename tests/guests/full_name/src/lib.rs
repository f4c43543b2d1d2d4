//! A custom data template, as a team would write one: joins `first` and `last` into `name` (with the
//! `separator` option, default a space), keeps `email` as it is, and rejects a row without a last name.
//! A last name of `panic` makes it panic (a trap, as plugins abort on panic), for the sandbox's tests.

use sluice_plugin_sdk::{FatalError, Input, Options, Records, Template, Value, export_template};

struct FullName {
    separator: String,
}

impl Template for FullName {
    fn create(mut options: Options) -> Result<Self, FatalError> {
        let separator = options.get("separator").unwrap_or_else(|| " ".to_string());
        options.finish()?;
        Ok(FullName { separator })
    }

    fn apply(&mut self, input: &Input<'_>, out: &mut Records) -> Result<(), FatalError> {
        let text = |name: &str, row: usize| match input.column(name).map(|c| input.value(c, row)) {
            Some(Value::Text(text)) if !text.is_empty() => Some(text.to_string()),
            _ => None,
        };
        for row in 0..input.rows() {
            let Some(last) = text("last", row) else {
                out.reject(input.line(row), "column `last` is empty", &input.row_json(row));
                continue;
            };
            assert!(last != "panic", "a template that traps on line {}", input.line(row));
            let name = match text("first", row) {
                Some(first) => format!("{first}{}{last}", self.separator),
                None => last,
            };
            let column = out.batch().column("name");
            out.batch().push(column, Value::Text(&name));
            if let Some(email) = text("email", row) {
                let column = out.batch().column("email");
                out.batch().push(column, Value::Text(&email));
            }
            out.end_row(input.line(row));
        }
        Ok(())
    }
}

export_template!(FullName);
