"""An independent reader of the Delta tables Sluice writes: the `deltalake` package (delta-rs's Python
binding) and pyarrow, installed from PyPI by python.sh.

    delta_reader.py sql  NAME=FOLDER... -- SQL   rows of SQL over the tables, loaded into SQLite in memory
    delta_reader.py history FOLDER                the table's versions, newest first, as JSON lines
    delta_reader.py properties FOLDER             the table's properties (its configuration), as JSON
    delta_reader.py dataflow FOLDER -- SQL        rows of SQL over a dataflow's folder (or prefix) of tables: each table
                                                  by its name, `_sluice_rejects` (every table's rejected rows)
                                                  and `_sluice_objects` (the objects its commits' markers list)
    delta_reader.py columns FOLDER                the table's columns and their types, one per line
    delta_reader.py foreign FOLDER                makes a table there as another tool would: `id` (long) and
                                                  `seen` (a timestamp, which Sluice does not write), one row

A table may be a folder or an s3:// location; an S3-compatible store's endpoint and keys come from
READER_S3_ENDPOINT, READER_S3_ACCESS_KEY and READER_S3_SECRET_KEY.

Each row prints as one line, its values joined by a tab (NULL as the empty string)."""

import json
import os
import sqlite3
import sys

from deltalake import DeltaTable
from pyarrow import fs as pafs


def s3_options():
    return {
        "AWS_ENDPOINT_URL": os.environ["READER_S3_ENDPOINT"],
        "AWS_ACCESS_KEY_ID": os.environ["READER_S3_ACCESS_KEY"],
        "AWS_SECRET_ACCESS_KEY": os.environ["READER_S3_SECRET_KEY"],
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }


def open_table(location):
    if not location.startswith("s3://"):
        return DeltaTable(location)
    return DeltaTable(location, storage_options=s3_options())


class Files:
    """A folder, or an S3 prefix, listed and read through pyarrow's file systems."""

    def __init__(self, location):
        self.s3 = location.startswith("s3://")
        if self.s3:
            scheme, host = os.environ["READER_S3_ENDPOINT"].split("://", 1)
            self.fs = pafs.S3FileSystem(
                access_key=os.environ["READER_S3_ACCESS_KEY"],
                secret_key=os.environ["READER_S3_SECRET_KEY"],
                endpoint_override=host,
                scheme=scheme,
                region="us-east-1",
            )
            self.root = location[len("s3://"):].rstrip("/")
        else:
            self.fs = pafs.LocalFileSystem()
            self.root = location

    def location(self, path):
        return ("s3://" + path) if self.s3 else path

    def names(self, path):
        """The names in the folder `path`, and whether each is a folder; nothing where it does not exist."""
        selector = pafs.FileSelector(path, allow_not_found=True)
        return sorted((i.base_name, i.type == pafs.FileType.Directory) for i in self.fs.get_file_info(selector))

    def read(self, path):
        with self.fs.open_input_stream(path) as stream:
            return stream.read().decode()


def load(connection, name, folder):
    table = open_table(folder).to_pyarrow_table()
    columns = table.column_names
    quoted = ", ".join('"%s"' % c for c in columns)
    connection.execute('CREATE TABLE "%s" (%s)' % (name, quoted))
    rows = zip(*(table.column(c).to_pylist() for c in columns)) if columns else []
    marks = ", ".join("?" for _ in columns)
    connection.executemany('INSERT INTO "%s" VALUES (%s)' % (name, marks), rows)


def active_adds(files, folder):
    """The Add actions of the table's current files, replayed from its JSON log (Sluice's test tables
    never reach a checkpoint)."""
    log = folder + "/_delta_log"
    adds = {}
    for name, _ in files.names(log):
        if not name.endswith(".json"):
            continue
        for line in files.read(log + "/" + name).splitlines():
            action = json.loads(line)
            if "add" in action:
                adds[action["add"]["path"]] = action["add"]
            elif "remove" in action:
                adds.pop(action["remove"]["path"], None)
    return adds.values()


def load_dataflow(connection, location):
    connection.execute("CREATE TABLE _sluice_objects (key, etag, rows, run_id)")
    connection.execute("CREATE TABLE _sluice_rejects (object, etag, line, reason, raw, run_id)")
    files = Files(location)
    for name, is_folder in files.names(files.root):
        path = files.root + "/" + name
        if not is_folder:
            continue
        if name == "_sluice_rejects":
            for table, _ in files.names(path):
                rejects = open_table(files.location(path + "/" + table)).to_pyarrow_table()
                columns = ["object", "etag", "line", "reason", "raw", "run_id"]
                rows = zip(*(rejects.column(c).to_pylist() for c in columns))
                connection.executemany("INSERT INTO _sluice_rejects VALUES (?, ?, ?, ?, ?, ?)", rows)
        elif ("_delta_log", True) in files.names(path):
            load(connection, name, files.location(path))
            for add in active_adds(files, path):
                marker = (add.get("tags") or {}).get("sluice.marker")
                for o in json.loads(marker)["objects"] if marker else []:
                    connection.execute(
                        "INSERT INTO _sluice_objects VALUES (?, ?, ?, ?)",
                        (o.get("key"), o.get("etag"), o.get("rows"), o.get("run_id")),
                    )


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
        for entry in open_table(argv[1]).history():
            print(json.dumps({
                "version": entry.get("version"),
                "operation": entry.get("operation"),
                "run": entry.get("sluice.run"),
                "fence": entry.get("sluice.fence"),
            }))
    elif argv[0] == "dataflow":
        connection = sqlite3.connect(":memory:")
        load_dataflow(connection, argv[1])
        for row in connection.execute(argv[3]):
            print("\t".join(text(v) for v in row))
    elif argv[0] == "columns":
        for field in open_table(argv[1]).schema().fields:
            print("%s %s" % (field.name, field.type.type))
    elif argv[0] == "foreign":
        import datetime
        import pyarrow
        from deltalake import write_deltalake
        seen = pyarrow.array([datetime.datetime(2026, 12, 1, 9, 30)], pyarrow.timestamp("us"))
        write_deltalake(argv[1], pyarrow.table({"id": pyarrow.array([7], pyarrow.int64()), "seen": seen}))
    elif argv[0] == "properties":
        print(json.dumps(open_table(argv[1]).metadata().configuration, sort_keys=True))
    else:
        sys.exit("unknown command %r" % argv[0])


main(sys.argv[1:])
# Leave without the interpreter's teardown: the Rust and Arrow thread pools behind deltalake and pyarrow
# sometimes abort at exit ("terminate called without an active exception") under load.
sys.stdout.flush()
os._exit(0)
