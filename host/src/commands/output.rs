//! What commands print. `println!` panics when stdout's reader has gone away (`sluice dataflows | head -1`);
//! these write instead, so a command ends quietly then, as `ls` and `rg` do.

use super::Failure;
use std::fmt;
use std::io::{self, Write};

/// Prints a line to stdout, as `println!` does, but returns `Err(Failure::Closed)` once the reader has gone
/// away, and `Err(Failure::Input)` when stdout fails otherwise (a full disk under `> file`).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::commands::output::line(format_args!($($arg)*))
    };
}

/// Prints a line to stderr, as `eprintln!` does, without panicking when stderr is closed: a message that
/// cannot be shown has nowhere left to say so, and the command's exit status still tells.
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::commands::output::note_line(format_args!($($arg)*))
    };
}

pub fn line(text: fmt::Arguments) -> Result<(), Failure> {
    let mut stdout = io::stdout().lock();
    // Stdout is line-buffered, so the newline flushes and a gone reader is seen at this line.
    stdout.write_fmt(text).and_then(|()| stdout.write_all(b"\n")).map_err(|error| match error.kind() {
        io::ErrorKind::BrokenPipe => Failure::Closed,
        _ => Failure::Input(format!("writing to stdout: {error}")),
    })
}

pub fn note_line(text: fmt::Arguments) {
    let mut stderr = io::stderr().lock();
    let _ = stderr.write_fmt(text).and_then(|()| stderr.write_all(b"\n"));
}
