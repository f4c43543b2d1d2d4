// A Sluice data template written in JavaScript, built into a WebAssembly component by componentize-js
// (build.sh). It does what the Rust template of `sluice plugin new NAME --kind template` does, so the two
// can be compared (BENCHMARKS.md): keeps the columns the `fields` option names (all without it), renamed
// with `prefix`, and rejects a row whose `required` column is empty.
//
// The export is the contract's interface `transform`, holding the resource class `Mapper`. A `result`'s
// error is thrown: `create` throws a `fatal-error` record for an option it does not know. Batches cross
// column by column: per column a Uint8Array of type tags, a Uint32Array of end offsets and a Uint8Array of
// value bytes; lines are u64, so BigInts.
const TEXT = 4, NULL = 0;
const decoder = new TextDecoder();

function fatal(message) {
  return { line: 0n, message, completed: { batches: [], rejects: [] } };
}

// The row as a JSON object of its text values, for a reject's raw text.
function rowJson(input, row) {
  const object = {};
  for (const column of input.columns) {
    const bytes = column.data.subarray(start(column, row), end(column, row));
    object[column.name] = column.types[row] === NULL ? null : decoder.decode(bytes);
  }
  return JSON.stringify(object).slice(0, 1024);
}

class Mapper {
  constructor(fields, prefix, required) {
    this.fields = fields; this.prefix = prefix; this.required = required;
  }

  static create(options) {
    const settings = new Map(options);
    const fields = settings.has("fields") ? JSON.parse(settings.get("fields")) : null;
    const prefix = settings.get("prefix") ?? "";
    const required = settings.get("required") ?? null;
    for (const key of settings.keys()) {
      if (!["fields", "prefix", "required"].includes(key)) throw fatal(`unknown option \`${key}\``);
    }
    return new Mapper(fields, prefix, required);
  }

  apply(input) {
    const byName = new Map(input.columns.map((c) => [c.name, c]));
    const names = (this.fields ?? input.columns.map((c) => c.name)).filter((n) => byName.has(n));
    const required = this.required === null ? undefined : byName.get(this.required);
    // First the rows that are kept, then each kept column copied slice by slice into buffers made once.
    const kept = [], rejects = [];
    for (let row = 0; row < input.rows; row++) {
      if (this.required !== null && isEmpty(required, row)) {
        rejects.push({ line: input.lines[row], reason: `column \`${this.required}\` is empty`, raw: rowJson(input, row) });
      } else {
        kept.push(row);
      }
    }
    const columns = names.map((name) => {
      const from = byName.get(name);
      const types = new Uint8Array(kept.length), ends = new Uint32Array(kept.length);
      let size = 0;
      kept.forEach((row, i) => { size += end(from, row) - start(from, row); ends[i] = size; types[i] = from.types[row]; });
      const data = new Uint8Array(size);
      kept.forEach((row, i) => data.set(from.data.subarray(start(from, row), end(from, row)), i === 0 ? 0 : ends[i - 1]));
      return { name: this.prefix + name, types, ends, data };
    });
    const lines = new BigUint64Array(kept.map((row) => input.lines[row]));
    return { records: { rows: kept.length, columns, lines }, rejects };
  }
}

function start(column, row) {
  return row === 0 ? 0 : column.ends[row - 1];
}

function end(column, row) {
  return column.ends[row];
}

function isEmpty(column, row) {
  return !column || column.types[row] === NULL || (column.types[row] === TEXT && end(column, row) === start(column, row));
}

export const transform = { Mapper };
