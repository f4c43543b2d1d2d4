"""An independent reader of the Delta tables Sluice writes: the `deltalake` package (delta-rs's Python
binding) and pyarrow, installed from PyPI by delta_reader.sh.

    delta_reader.py sql  NAME=FOLDER... -- SQL   rows of SQL over the tables, loaded into SQLite in memory
    delta_reader.py history FOLDER                the table's versions, newest first, as JSON lines

Each row prints as one line, its values joined by a tab (NULL as the empty string)."""

import json
import os
import sqlite3
import sys

from deltalake import DeltaTable


def load(connection, name, folder):
    table = DeltaTable(folder).to_pyarrow_table()
    columns = table.column_names
    quoted = ", ".join('"%s"' % c for c in columns)
    connection.execute('CREATE TABLE "%s" (%s)' % (name, quoted))
    rows = zip(*(table.column(c).to_pylist() for c in columns)) if columns else []
    marks = ", ".join("?" for _ in columns)
    connection.executemany('INSERT INTO "%s" VALUES (%s)' % (name, marks), rows)


def text(value):
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


def main(argv):
    if argv[0] == "sql":
        split = argv.index("--")
        connection = sqlite3.connect(":memory:")
        for pair in argv[1:split]:
            name, folder = pair.split("=", 1)
            load(connection, name, folder)
        for row in connection.execute(argv[split + 1]):
            print("\t".join(text(v) for v in row))
    elif argv[0] == "history":
        for entry in DeltaTable(argv[1]).history():
            print(json.dumps({
                "version": entry.get("version"),
                "operation": entry.get("operation"),
                "run": entry.get("sluice.run"),
                "fence": entry.get("sluice.fence"),
            }))
    else:
        sys.exit("unknown command %r" % argv[0])


main(sys.argv[1:])
# Leave without the interpreter's teardown: the Rust and Arrow thread pools behind deltalake and pyarrow
# sometimes abort at exit ("terminate called without an active exception") under load.
sys.stdout.flush()
os._exit(0)
