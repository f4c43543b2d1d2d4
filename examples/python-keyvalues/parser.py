"""A Sluice format plugin written in Python, built into a WebAssembly component by componentize-py.

Each line of a file is a record of `key=value` pairs separated by `separator` (an option, default `;`):
`id=1;name=Ann`. A line with a pair that has no `=` is rejected with its line number; empty lines are
skipped. It is the same format as the Rust plugin `sluice plugin new NAME --kind format` writes, so the two
can be compared (BENCHMARKS.md).

The module is named after the contract's interface (`parser`), which is where componentize-py looks for
the `FileParser` resource. Batches cross the boundary column by column, as the contract asks: per column
one bytes buffer of type tags, a list of end offsets and one bytes buffer of values.
"""

from typing import List, Self, Tuple

from componentize_py_types import Err
from wit_world.exports import parser as contract
from wit_world.imports.types import Batch, Column, FatalError, Output, RejectedRow

NULL = b"\x00"
TEXT = 4


class ColumnBuilder:
    """One column of the batch being built: type tags, end offsets and value bytes."""

    def __init__(self, name: str, rows_before: int):
        self.name = name
        self.types = bytearray(NULL * rows_before)
        self.ends = [0] * rows_before
        self.data = bytearray()

    def push_text(self, text: str) -> None:
        self.data += text.encode("utf-8")
        self.types.append(TEXT)
        self.ends.append(len(self.data))

    def pad_to(self, rows: int) -> None:
        while len(self.types) < rows:
            self.types += NULL
            self.ends.append(len(self.data))

    def column(self) -> Column:
        return Column(self.name, bytes(self.types), self.ends, bytes(self.data))


class FileParser(contract.FileParser):
    def __init__(self, separator: str):
        self.separator = separator
        self.held = b""
        self.line = 0

    @classmethod
    def create(cls, options: List[Tuple[str, str]]) -> Self:
        settings = dict(options)
        separator = settings.pop("separator", ";")
        if settings:
            unknown = ", ".join(sorted(settings))
            raise Err(FatalError(0, f"unknown option(s) {unknown}: this plugin takes `separator`", Output([], [])))
        if len(separator) != 1:
            raise Err(FatalError(0, f"`separator` is one character, not `{separator}`", Output([], [])))
        return cls(separator)

    def feed(self, chunk: bytes) -> Output:
        *lines, self.held = (self.held + chunk).split(b"\n")
        return self.records(lines)

    def finish(self) -> Output:
        lines, self.held = ([self.held] if self.held else []), b""
        return self.records(lines)

    def records(self, lines: List[bytes]) -> Output:
        columns: dict[str, ColumnBuilder] = {}
        rows, lines_of, rejects = 0, [], []
        for raw in lines:
            self.line += 1
            try:
                text = raw.decode("utf-8").rstrip("\r")
            except UnicodeDecodeError:
                rejects.append(RejectedRow(self.line, "invalid UTF-8", raw[:1024].decode("utf-8", "replace")))
                continue
            if not text.strip():
                continue
            pairs = [pair.split("=", 1) for pair in text.split(self.separator)]
            bad = next((pair[0] for pair in pairs if len(pair) != 2), None)
            if bad is not None:
                rejects.append(RejectedRow(self.line, f"`{bad}` is not key=value", text[:1024]))
                continue
            for key, value in pairs:
                key = key.strip()
                builder = columns.get(key)
                if builder is None:
                    builder = columns[key] = ColumnBuilder(key, rows)
                builder.pad_to(rows)
                builder.push_text(value.strip())
            rows += 1
            lines_of.append(self.line)
        if rows == 0:
            return Output([], rejects)
        for builder in columns.values():
            builder.pad_to(rows)
        return Output([Batch(rows, [b.column() for b in columns.values()], lines_of)], rejects)
