"""Writes files of the columnar and office formats with independent writers (pyarrow, ElementTree,
fastavro, openpyxl), and says what each
holds as the writer reads it back, for tests/formats.rs to compare value by value with what Sluice reads.

    formats.py parquet DIR   writes DIR/*.parquet and prints {file: {"rows": [...], ...}} as JSON
    formats.py xml DIR       writes DIR/catalog.xml (Python's ElementTree) and prints the same
    formats.py avro DIR      writes DIR/orders-CODEC.avro (fastavro) and prints the same
    formats.py xlsx DIR      writes DIR/orders.xlsx (openpyxl) and prints the same
    formats.py zip DIR       writes DIR/exports.zip (zipfile) and prints its members and their rows

Values are given as Sluice's conventions put them (README, "Parquet"), computed here from the raw values
pyarrow reads back, not by Sluice's code: timestamps as RFC 3339 from their integer count, decimals as exact
text, binary as base64, lists, structs and maps as JSON.
"""

import base64
import datetime
import decimal
import json
import math
import sys

import xml.etree.ElementTree as ElementTree

import pyarrow as pa
import pyarrow.parquet as pq

UNIT_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}


def timestamp_text(count, unit, utc):
    per_second = 10 ** UNIT_DIGITS[unit]
    seconds, fraction = divmod(count, per_second)
    moment = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=seconds)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if UNIT_DIGITS[unit]:
        text += "." + str(fraction).rjust(UNIT_DIGITS[unit], "0")
    return text + ("Z" if utc else "")


def time_text(count, unit):
    per_second = 10 ** UNIT_DIGITS[unit]
    seconds, fraction = divmod(count, per_second)
    text = "%02d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)
    if UNIT_DIGITS[unit]:
        text += "." + str(fraction).rjust(UNIT_DIGITS[unit], "0")
    return text


def as_sluice(array):
    """The column's values, one per row, as Sluice hands them on."""
    kind = array.type
    if pa.types.is_timestamp(kind):
        counts = array.cast(pa.int64()).to_pylist()
        return [None if c is None else timestamp_text(c, kind.unit, kind.tz is not None) for c in counts]
    if pa.types.is_time(kind):
        counts = array.cast(pa.int64() if kind.bit_width == 64 else pa.int32()).to_pylist()
        return [None if c is None else time_text(c, kind.unit) for c in counts]
    if pa.types.is_dictionary(kind):
        return as_sluice(array.cast(kind.value_type))
    return [nested(v) for v in array.to_pylist()]


def nested(value):
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: nested(v) for k, v in value.items()}
    if isinstance(value, list):
        # A map comes back as a list of (key, value) pairs.
        if value and all(isinstance(item, tuple) and len(item) == 2 for item in value):
            return {str(k): nested(v) for k, v in value}
        return [nested(v) for v in value]
    raise TypeError(f"no Sluice form for {value!r}")


def rows_of(table):
    columns = {name: as_sluice(table.column(name).combine_chunks()) for name in table.column_names}
    return [{name: columns[name][i] for name in table.column_names} for i in range(table.num_rows)]


def types_table(rows=2500):
    """Every physical type and the common logical ones, with nulls, across several row groups."""
    ids = list(range(1, rows + 1))
    def some(values):
        return [None if i % 7 == 3 else v for i, v in zip(ids, values)]
    utc = datetime.timezone.utc
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "small": pa.array(some([i % 100 - 50 for i in ids]), pa.int8()),
        "i16": pa.array([i * 7 - 9000 for i in ids], pa.int16()),
        "i32": pa.array(some([i * 100_003 - 2**30 for i in ids]), pa.int32()),
        "u8": pa.array([i % 256 for i in ids], pa.uint8()),
        "u32": pa.array([2**32 - i for i in ids], pa.uint32()),
        "u64": pa.array([2**63 + i if i % 2 else i for i in ids], pa.uint64()),
        "f32": pa.array(some([i / 8 for i in ids]), pa.float32()),
        "f64": pa.array([i * 1.1 - 3.3 for i in ids], pa.float64()),
        "flag": pa.array(some([i % 3 == 0 for i in ids]), pa.bool_()),
        "name": pa.array(some([f"n\u00e4me {i} \u2713 \"quoted\"" for i in ids]), pa.string()),
        "blob": pa.array(some([bytes([i % 256, 0, 255]) * (i % 4) for i in ids]), pa.binary()),
        "fixed": pa.array([i.to_bytes(4, "big") for i in ids], pa.binary(4)),
        "day": pa.array(some([datetime.date(1969, 12, 1) + datetime.timedelta(days=i * 13) for i in ids]), pa.date32()),
        "at_utc": pa.array(some([datetime.datetime(2026, 1, 1, tzinfo=utc) + datetime.timedelta(seconds=i * 3607, microseconds=i) for i in ids]), pa.timestamp("us", tz="UTC")),
        "at_local": pa.array([datetime.datetime(1999, 12, 31, 23, 59) + datetime.timedelta(milliseconds=i * 1001) for i in ids], pa.timestamp("ms")),
        "at_ns": pa.array([1_700_000_000_123_456_789 + i for i in ids], pa.timestamp("ns", tz="UTC")),
        "clock": pa.array([(i * 1_000_003) % 86_400_000_000 for i in ids], pa.time64("us")),
        "price": pa.array(some([decimal.Decimal(i * 37 - 5000) / 100 for i in ids]), pa.decimal128(10, 2)),
        "big": pa.array([decimal.Decimal(f"{i}.{i:010d}") * (-1 if i % 2 else 1) for i in ids], pa.decimal128(38, 10)),
        "tags": pa.array(some([[f"t{j}" for j in range(i % 4)] for i in ids]), pa.list_(pa.string())),
        "address": pa.array(some([{"city": f"C{i % 9}", "zip": i * 3} for i in ids]), pa.struct([("city", pa.string()), ("zip", pa.int32())])),
        "attrs": pa.array([[("a", i), ("b", -i)] for i in ids], pa.map_(pa.string(), pa.int64())),
        "category": pa.array([["red", "green", "blue"][i % 3] for i in ids]).dictionary_encode(),
    })


def orders_table(rows):
    return pa.table({
        "id": pa.array(range(1, rows + 1), pa.int64()),
        "customer": pa.array([f"customer {i % 97}" for i in range(rows)], pa.string()),
        "amount": pa.array([i * 0.25 for i in range(rows)], pa.float64()),
        "paid": pa.array([i % 2 == 0 for i in range(rows)], pa.bool_()),
    })


def wide_table(rows, columns=20):
    return pa.table({f"c{j}": pa.array([i * (j + 1) for i in range(rows)], pa.int64()) for j in range(columns)})


def parquet(folder):
    described = {}
    types = types_table()
    pq.write_table(types, f"{folder}/types.parquet", row_group_size=1000)
    described["types.parquet"] = {"rows": rows_of(types)}

    legacy = pa.table({"id": pa.array([1, 2, 3], pa.int64()),
                       "at": pa.array([0, 1_234_567_890_123_456_789, -86_400_000_000_000], pa.timestamp("ns"))})
    pq.write_table(legacy, f"{folder}/int96.parquet", use_deprecated_int96_timestamps=True)
    described["int96.parquet"] = {"rows": rows_of(legacy)}

    orders = orders_table(5000)
    for codec in ["none", "snappy", "gzip", "lz4", "brotli", "zstd"]:
        pq.write_table(orders, f"{folder}/orders-{codec}.parquet", compression=codec, row_group_size=2000)
        described[f"orders-{codec}.parquet"] = {"rows": rows_of(orders)}

    wide = wide_table(100_000)
    pq.write_table(wide, f"{folder}/wide.parquet", compression="none", row_group_size=25_000)
    metadata = pq.ParquetFile(f"{folder}/wide.parquet").metadata
    chunks = {}
    for group in range(metadata.num_row_groups):
        for j in range(metadata.num_columns):
            column = metadata.row_group(group).column(j)
            chunks.setdefault(column.path_in_schema, 0)
            chunks[column.path_in_schema] += column.total_compressed_size
    described["wide.parquet"] = {"rows_count": wide.num_rows, "column_bytes": chunks}
    json.dump(described, sys.stdout)


def local(tag):
    return tag.rsplit("}", 1)[-1]


def grouped(children):
    groups = {}
    for child in children:
        groups.setdefault(local(child.tag), []).append(child)
    return groups


def element_json(element):
    """An element as Sluice's xml plugin hands it on, from what ElementTree read back."""
    if not element.attrib and len(element) == 0:
        return element.text or ""
    value = {"@" + local(k): v for k, v in element.attrib.items()}
    for name, children in grouped(element).items():
        value[name] = element_json(children[0]) if len(children) == 1 else [element_json(c) for c in children]
    if (element.text or "").strip():
        value["#text"] = element.text.strip()
    return value


def record_of(element):
    record = {local(k): v for k, v in element.attrib.items()}
    for name, children in grouped(element).items():
        only = children[0]
        if len(children) == 1 and not only.attrib and len(only) == 0:
            record[name] = only.text or ""
        else:
            record[name] = element_json(only) if len(children) == 1 else [element_json(c) for c in children]
    if (element.text or "").strip():
        record["#text"] = element.text.strip()
    return record


def xml(folder):
    """A product catalogue as a shop system exports one: a default namespace, attributes, prices with a
    currency, repeated tags, nested dimensions, variants, text with markup characters, empty elements."""
    ElementTree.register_namespace("", "urn:example:catalog")
    ns = "{urn:example:catalog}"
    catalog = ElementTree.Element(ns + "catalog", {"generated": "2026-12-06T08:00:00Z"})
    ElementTree.SubElement(catalog, ns + "supplier").text = "Acme & Sons <wholesale>"
    for i in range(1, 501):
        product = ElementTree.SubElement(catalog, ns + "product", {"id": f"p{i}", "status": ["active", "draft"][i % 2]})
        ElementTree.SubElement(product, ns + "name").text = f"Product {i} \u2014 \"quoted\" & <b>bold</b>"
        price = ElementTree.SubElement(product, ns + "price", {"currency": ["EUR", "USD"][i % 2]})
        price.text = f"{i * 3}.{i % 100:02d}"
        for t in range(i % 4):
            ElementTree.SubElement(product, ns + "tag").text = f"tag{t}"
        if i % 5 == 0:
            dimensions = ElementTree.SubElement(product, ns + "dimensions", {"unit": "cm"})
            ElementTree.SubElement(dimensions, ns + "width").text = str(i % 30)
            ElementTree.SubElement(dimensions, ns + "height").text = str(i % 40)
        if i % 7 == 0:
            variants = ElementTree.SubElement(product, ns + "variants")
            for v in range(2):
                ElementTree.SubElement(variants, ns + "variant", {"sku": f"p{i}-{v}"}).text = ["small", "large"][v]
        if i % 11 == 0:
            ElementTree.SubElement(product, ns + "discontinued")
    ElementTree.indent(catalog)
    ElementTree.ElementTree(catalog).write(f"{folder}/catalog.xml", encoding="utf-8", xml_declaration=True)
    back = ElementTree.parse(f"{folder}/catalog.xml").getroot()
    rows = [record_of(p) for p in back if local(p.tag) == "product"]
    json.dump({"catalog.xml": {"rows": rows, "record": "/catalog/product"}}, sys.stdout)


AVRO_SCHEMA = {
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "quantity", "type": "int"},
        {"name": "customer", "type": ["null", "string"]},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["open", "paid", "void"]}},
        {"name": "total", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
        {"name": "tax", "type": {"type": "fixed", "name": "Tax", "size": 8, "logicalType": "decimal",
                                 "precision": 16, "scale": 4}},
        {"name": "ratio", "type": "double"},
        {"name": "weight", "type": "float"},
        {"name": "paid", "type": "boolean"},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "at_us", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
        {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "clock", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "raw", "type": "bytes"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attributes", "type": {"type": "map", "values": "long"}},
        {"name": "address", "type": ["null", {"type": "record", "name": "Address", "fields": [
            {"name": "city", "type": "string"}, {"name": "zip", "type": "int"}]}]},
        {"name": "billing", "type": ["null", "Address"]},
    ],
}


def avro_rows(count):
    import uuid
    utc = datetime.timezone.utc
    for i in range(1, count + 1):
        address = {"city": f"City {i % 13} \u00e9", "zip": 10_000 + i}
        yield {
            "id": i, "quantity": i % 50 - 10, "customer": None if i % 4 == 0 else f"customer \"{i % 97}\"",
            "status": ["open", "paid", "void"][i % 3],
            "total": decimal.Decimal(i * 1234 - 500_000).scaleb(-2),
            "tax": decimal.Decimal(-i * 77).scaleb(-4),
            "ratio": i / 7, "weight": i * 0.5, "paid": i % 2 == 0,
            "day": datetime.date(1969, 12, 20) + datetime.timedelta(days=i * 3),
            "at": datetime.datetime(2026, 1, 1, tzinfo=utc) + datetime.timedelta(milliseconds=i * 3_600_123),
            "at_us": None if i % 5 == 0 else datetime.datetime(2026, 6, 1, tzinfo=utc) + datetime.timedelta(microseconds=i * 1_000_001),
            "local": datetime.datetime(1999, 12, 31, 23) + datetime.timedelta(milliseconds=i * 1_001),
            "clock": datetime.time(i % 24, i % 60, i % 60, (i % 1000) * 1000),
            "ref": uuid.UUID(int=i * 2**64 + i),
            "raw": bytes([i % 256, 0, 255]) * (i % 3),
            "tags": [f"t{j}" for j in range(i % 4)],
            "attributes": {f"k{j}": i * j for j in range(i % 3)},
            "address": None if i % 6 == 0 else address,
            "billing": address if i % 2 else None,
        }


def avro_value(value, logical):
    """A value fastavro read back, as Sluice's avro plugin hands it on (README, "Avro")."""
    if isinstance(value, datetime.datetime):
        digits = {"timestamp-millis": 3, "local-timestamp-millis": 3, "timestamp-micros": 6}[logical]
        text = value.strftime("%Y-%m-%dT%H:%M:%S") + "." + f"{value.microsecond:06d}"[:digits]
        return text + ("Z" if value.tzinfo is not None else "")
    if isinstance(value, datetime.time):
        return value.strftime("%H:%M:%S") + "." + f"{value.microsecond // 1000:03d}"
    if isinstance(value, (datetime.date, decimal.Decimal)):
        return nested(value)
    if type(value).__name__ == "UUID":
        return str(value)
    return nested(value)


def avro(folder):
    import fastavro
    schema = fastavro.parse_schema(AVRO_SCHEMA)
    rows = list(avro_rows(3000))
    logical = {}
    for field in AVRO_SCHEMA["fields"]:
        kinds = field["type"] if isinstance(field["type"], list) else [field["type"]]
        logical[field["name"]] = next((k["logicalType"] for k in kinds if isinstance(k, dict) and "logicalType" in k), None)
    described = {}
    for codec in ["null", "deflate", "snappy", "zstandard"]:
        name = f"orders-{codec}.avro"
        with open(f"{folder}/{name}", "wb") as out:
            fastavro.writer(out, schema, rows, codec=codec, sync_interval=16_000)
        with open(f"{folder}/{name}", "rb") as back:
            read = [{k: avro_value(v, logical[k]) for k, v in record.items()} for record in fastavro.reader(back)]
        described[name] = {"rows": read}
    json.dump(described, sys.stdout)


def excel_value(value):
    """A cell openpyxl read back, as Sluice's xlsx plugin hands it on (README, "Excel")."""
    if isinstance(value, datetime.datetime):
        text = value.strftime("%Y-%m-%dT%H:%M:%S")
        millis = round(value.microsecond / 1000)
        return text + (f".{millis:03d}" if millis else "")
    if isinstance(value, datetime.time):
        return value.strftime("%H:%M:%S")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def xlsx(folder):
    """A workbook as an office exports one: a notes sheet first, then orders under a title row, with
    numbers, text, booleans, dates, date-times, times of day, gaps and an empty row."""
    import openpyxl
    book = openpyxl.Workbook()
    notes = book.active
    notes.title = "Notes"
    notes.append(["Exported for the finance team"])
    orders = book.create_sheet("Orders")
    orders.append(["Orders, November 2026"])
    header = ["id", "customer", "amount", "quantity", "paid", "day", "at", "clock", "note"]
    orders.append(header)
    for i in range(1, 1201):
        if i == 600:
            orders.append([])
        orders.append([
            i, f"Customer \u00e9 {i % 37}", i * 1.25 + 0.01, i % 9 - 4, i % 2 == 0,
            datetime.date(2026, 1, 1) + datetime.timedelta(days=i % 300),
            datetime.datetime(2026, 11, 5, 8, 30) + datetime.timedelta(seconds=i * 61, milliseconds=(i % 4) * 250),
            datetime.time(i % 24, i % 60, (i * 7) % 60),
            None if i % 3 else f"note {i}",
        ])
    book.save(f"{folder}/orders.xlsx")
    back = openpyxl.load_workbook(f"{folder}/orders.xlsx")["Orders"]
    rows = []
    names = None
    for values in back.iter_rows(min_row=2, values_only=True):
        if names is None:
            names = values
            continue
        if all(v is None for v in values):
            continue
        rows.append({name: excel_value(v) for name, v in zip(names, values)})
    json.dump({"orders.xlsx": {"rows": rows}}, sys.stdout)


def archive(folder):
    """A ZIP archive as people send them: a folder of monthly CSV exports (deflated, and one stored), a
    gzip-compressed one, a directory entry, macOS's metadata beside them, a row one field too long, and a
    JSON Lines file of late orders."""
    import csv
    import gzip
    import io
    import zipfile
    members = {}
    for month, count in [("2026-10", 40), ("2026-11", 300), ("2026-12", 5)]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["id", "month", "amount", "note"])
        for i in range(count):
            writer.writerow([f"{month}-{i}", month, f"{i * 1.5:.2f}", "line,with \"quotes\"" if i % 10 == 0 else ""])
        if month == "2026-11":
            out.write("bad,row,with,five,fields\n")
        members[f"orders/{month}.csv"] = out.getvalue().encode()
    with zipfile.ZipFile(f"{folder}/exports.zip", "w") as zf:
        zf.writestr(zipfile.ZipInfo("orders/"), b"")
        zf.writestr("orders/2026-10.csv", members["orders/2026-10.csv"], compress_type=zipfile.ZIP_STORED)
        zf.writestr("orders/2026-11.csv", members["orders/2026-11.csv"], compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("orders/2026-12.csv.gz", gzip.compress(members["orders/2026-12.csv"]), compress_type=zipfile.ZIP_STORED)
        zf.writestr("__MACOSX/orders/._2026-11.csv", b"\x00\x05\x16\x07", compress_type=zipfile.ZIP_DEFLATED)
        lines = [json.dumps({"id": f"late-{i}", "month": "2026-12", "amount": f"{i}.50", "note": "from JSON"}) for i in range(3)]
        zf.writestr("late/extra.jsonl", "\n".join(lines) + "\n", compress_type=zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(f"{folder}/exports.zip") as back:
        listed = {}
        for info in back.infolist():
            if info.is_dir() or info.filename.startswith("__MACOSX/"):
                continue
            data = back.read(info)
            if info.filename.endswith(".gz"):
                data = gzip.decompress(data)
            if info.filename.endswith(".jsonl"):
                rows = [json.loads(line) for line in data.decode().splitlines()]
            else:
                rows = list(csv.DictReader(io.StringIO(data.decode())))
            listed[info.filename] = {"rows": [r for r in rows if None not in r], "size": info.file_size}
    json.dump({"exports.zip": listed}, sys.stdout)


if __name__ == "__main__":
    {"parquet": parquet, "xml": xml, "avro": avro, "xlsx": xlsx, "zip": archive}[sys.argv[1]](*sys.argv[2:])
