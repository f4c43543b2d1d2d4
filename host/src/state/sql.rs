//! The state store's statements run on SQLite or PostgreSQL alike. They are written once, in the SQL both
//! speak (`?1` parameters are rewritten to `$1` for PostgreSQL); only the schema and its version record
//! differ by database. Values are the two kinds the state holds: 64-bit integers and text.

use crate::pg::{self, PooledClient};
use postgres::GenericClient;
use postgres::types::{ToSql, Type};
use std::time::Duration;

/// How long a PostgreSQL state transaction may sit idle before the server ends its session (see
/// [`Database::transaction`]): far longer than any pause between its statements, and a few renewals of
/// the shortest lease.
pub(super) const FROZEN_AFTER: Duration = Duration::from_secs(5);

/// A parameter of a statement.
#[derive(Clone, Copy, Debug)]
pub(super) enum Arg<'a> {
    Int(i64),
    Text(&'a str),
    OptText(Option<&'a str>),
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Arg::Int(value)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(value: &'a str) -> Self {
        Arg::Text(value)
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Arg::OptText(value)
    }
}

/// A value of a result row.
#[derive(Clone, Debug, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Text(String),
}

/// A result row; a column of another kind than asked for is an error, not a panic.
#[derive(Debug)]
pub(super) struct Row(Vec<Cell>);

impl Row {
    pub fn int(&self, index: usize) -> Result<i64, String> {
        self.opt_int(index)?.ok_or_else(|| format!("column {index} is null"))
    }

    pub fn opt_int(&self, index: usize) -> Result<Option<i64>, String> {
        match self.0.get(index) {
            Some(Cell::Int(value)) => Ok(Some(*value)),
            Some(Cell::Null) => Ok(None),
            other => Err(format!("column {index} is {other:?}, not an integer")),
        }
    }

    pub fn text(&self, index: usize) -> Result<String, String> {
        self.opt_text(index)?.ok_or_else(|| format!("column {index} is null"))
    }

    pub fn opt_text(&self, index: usize) -> Result<Option<String>, String> {
        match self.0.get(index) {
            Some(Cell::Text(value)) => Ok(Some(value.clone())),
            Some(Cell::Null) => Ok(None),
            other => Err(format!("column {index} is {other:?}, not text")),
        }
    }
}

/// What runs statements: a connection or a transaction of either database.
pub(super) trait Sql {
    /// Runs a statement; returns the rows it changed.
    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, String>;
    /// Runs a query; returns its rows.
    fn query(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, String>;
    /// Runs statements separated by `;`, without parameters.
    fn batch(&mut self, sql: &str) -> Result<(), String>;
}

/// A connection to the state database.
pub(super) enum Database {
    Sqlite(rusqlite::Connection),
    Postgres(Box<Session>),
}

/// A PostgreSQL connection: from the process's pool, or of its own (a lease's, which must not share a
/// connection with the work it guards).
pub(super) enum Session {
    Pooled(PooledClient),
    Own(postgres::Client),
}

impl std::ops::Deref for Session {
    type Target = postgres::Client;

    fn deref(&self) -> &postgres::Client {
        match self {
            Session::Pooled(client) => client,
            Session::Own(client) => client,
        }
    }
}

impl std::ops::DerefMut for Session {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        match self {
            Session::Pooled(client) => client,
            Session::Own(client) => client,
        }
    }
}

impl Database {
    /// Runs `work` in one transaction: all of it is committed, or none of it when it fails.
    pub fn transaction<T>(
        &mut self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, String>,
    ) -> Result<T, String> {
        match self {
            Database::Sqlite(connection) => {
                // Immediate: the write lock is taken (waiting out the busy timeout) at the start, so two
                // processes migrating a new database, or writing beside each other, queue instead of one
                // failing at once with "database is locked" when its read would become a write.
                let transaction = connection
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(|e| e.to_string())?;
                let value = work(&mut Sqlite(&transaction))?;
                transaction.commit().map_err(|e| e.to_string())?;
                Ok(value)
            }
            Database::Postgres(client) => {
                let mut transaction = client.transaction().map_err(|e| pg::describe(&e))?;
                // A state transaction is a few statements with nothing between them but this process's
                // own work, so one idle for longer is a frozen process (a stopped VM, a long pause). Its
                // locks, a lease's row above all, would hold up every run after it for as long as it is
                // frozen: the server ends its session instead.
                transaction
                    .batch_execute(&format!(
                        "SET LOCAL idle_in_transaction_session_timeout = {}",
                        FROZEN_AFTER.as_millis()
                    ))
                    .map_err(|e| pg::describe(&e))?;
                let value = work(&mut Postgres(&mut transaction))?;
                transaction.commit().map_err(|e| pg::describe(&e))?;
                Ok(value)
            }
        }
    }

    /// The connection itself, for single statements (each its own transaction).
    pub fn sql(&mut self) -> Box<dyn Sql + '_> {
        match self {
            Database::Sqlite(connection) => Box::new(Sqlite(connection)),
            Database::Postgres(client) => Box::new(Postgres(&mut ***client)),
        }
    }
}

/// Statements on an SQLite connection, or inside its transaction (which derefs to it).
struct Sqlite<'c>(&'c rusqlite::Connection);

impl Sql for Sqlite<'_> {
    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, String> {
        let args = rusqlite::params_from_iter(args.iter().map(sqlite_value));
        self.0.execute(sql, args).map(|rows| rows as u64).map_err(|e| e.to_string())
    }

    fn query(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, String> {
        let mut statement = self.0.prepare_cached(sql).map_err(|e| e.to_string())?;
        let width = statement.column_count();
        let args = rusqlite::params_from_iter(args.iter().map(sqlite_value));
        let rows = statement
            .query_map(args, |row| {
                (0..width)
                    .map(|index| {
                        Ok(match row.get_ref(index)? {
                            rusqlite::types::ValueRef::Integer(value) => Cell::Int(value),
                            rusqlite::types::ValueRef::Text(text) => {
                                Cell::Text(String::from_utf8_lossy(text).into_owned())
                            }
                            _ => Cell::Null,
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Cell>>>()
                    .map(Row)
            })
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
    }

    fn batch(&mut self, sql: &str) -> Result<(), String> {
        self.0.execute_batch(sql).map_err(|e| e.to_string())
    }
}

fn sqlite_value(arg: &Arg<'_>) -> rusqlite::types::Value {
    match *arg {
        Arg::Int(value) => rusqlite::types::Value::Integer(value),
        Arg::Text(text) | Arg::OptText(Some(text)) => rusqlite::types::Value::Text(text.to_string()),
        Arg::OptText(None) => rusqlite::types::Value::Null,
    }
}

/// Statements on a PostgreSQL client or inside its transaction.
struct Postgres<'c, C: GenericClient>(&'c mut C);

impl<C: GenericClient> Sql for Postgres<'_, C> {
    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, String> {
        self.0.execute(&numbered(sql), &postgres_args(args)).map_err(|e| pg::describe(&e))
    }

    fn query(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, String> {
        let rows = self.0.query(&numbered(sql), &postgres_args(args)).map_err(|e| pg::describe(&e))?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|index| {
                        let column = &row.columns()[index];
                        let cell = match *column.type_() {
                            Type::INT8 => row.try_get::<_, Option<i64>>(index).map(|v| v.map(Cell::Int)),
                            Type::INT4 => {
                                row.try_get::<_, Option<i32>>(index).map(|v| v.map(|v| Cell::Int(v.into())))
                            }
                            _ => row.try_get::<_, Option<String>>(index).map(|v| v.map(Cell::Text)),
                        };
                        cell.map(|cell| cell.unwrap_or(Cell::Null))
                            .map_err(|e| format!("column `{}`: {e}", column.name()))
                    })
                    .collect::<Result<Vec<Cell>, String>>()
                    .map(Row)
            })
            .collect()
    }

    fn batch(&mut self, sql: &str) -> Result<(), String> {
        self.0.batch_execute(sql).map_err(|e| pg::describe(&e))
    }
}

fn postgres_args<'a>(args: &'a [Arg<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter()
        .map(|arg| match arg {
            Arg::Int(value) => value as &(dyn ToSql + Sync),
            Arg::Text(text) => text,
            Arg::OptText(text) => text,
        })
        .collect()
}

/// `?1` parameters as PostgreSQL writes them, `$1`. The state's statements hold no `?` in literals.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn parameters_are_renumbered_for_postgres() {
        assert_eq!(super::numbered("a = ?1 AND b >= ?12"), "a = $1 AND b >= $12");
    }
}
