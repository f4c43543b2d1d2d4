//! Typed columns (contract 1.3.0): a whole column of one type, handed over as the flat buffer a parser
//! decoded it into. A Parquet row group's integers cross the boundary as one `list<s64>`, its timestamps
//! as their counts with the unit, with no type tag, end offset or text per value.
//!
//! A parser hands such columns on with [`Emitter::emit_typed`](crate::Emitter::emit_typed). Where the
//! plugin is exported through a world without typed batches (or run natively by [`crate::testing`]), the
//! SDK writes the same values in the 1.0 layout instead, timestamps as RFC 3339 text, as the host would.

use crate::Value;
use crate::as_text::{self, TimeUnit};
use crate::batch::ColumnValues;
use crate::bindings::sluice::plugin::types::Column;
use crate::ranged_bindings::sluice::plugin::columns::{
    ColumnValues as WireValues, DictionaryValues, TaggedValues, TextValues, TimeUnit as WireUnit,
    TimestampValues, TypedColumn as WireColumn,
};

/// Which rows of a column hold a value, as Arrow's validity bitmap: bit `i % 8` of byte `i / 8` is set
/// where row `i` has one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validity(Option<Vec<u8>>);

impl Validity {
    /// Every row holds a value.
    pub fn all() -> Validity {
        Validity(None)
    }

    /// A bitmap as Arrow keeps one (bit 0 of byte 0 is row 0), at least `rows` bits long.
    pub fn from_bitmap(bits: Vec<u8>) -> Validity {
        Validity(Some(bits))
    }

    /// Whether row `row` holds a value.
    pub fn is_valid(&self, row: usize) -> bool {
        self.0.as_ref().is_none_or(|bits| bits.get(row / 8).is_some_and(|byte| byte >> (row % 8) & 1 == 1))
    }

    fn into_wire(self) -> Vec<u8> {
        self.0.unwrap_or_default()
    }
}

/// The values of a [`TypedColumn`].
enum Values {
    Mixed(ColumnValues),
    Booleans(Vec<bool>),
    Integers(Vec<i64>),
    Floats(Vec<f64>),
    Text { ends: Vec<u32>, data: Vec<u8> },
    Json { ends: Vec<u32>, data: Vec<u8> },
    Timestamps { unit: TimeUnit, utc: bool, values: Vec<i64> },
    Dictionary { keys: Vec<u32>, ends: Vec<u32>, data: Vec<u8> },
}

/// One column of a whole batch: values of one type as one buffer, or (for a column whose values differ
/// in type) [`ColumnValues`] built value by value. A null row holds any value (0, say) in the buffer.
pub struct TypedColumn {
    name: String,
    valid: Validity,
    values: Values,
}

impl TypedColumn {
    /// A column built value by value, whose values may differ in type; its own values say which are null.
    pub fn mixed(values: ColumnValues) -> TypedColumn {
        TypedColumn { name: values.name().to_string(), valid: Validity::all(), values: Values::Mixed(values) }
    }

    /// Booleans, one per row.
    pub fn booleans(name: &str, values: Vec<bool>, valid: Validity) -> TypedColumn {
        TypedColumn::new(name, valid, Values::Booleans(values))
    }

    /// 64-bit integers, one per row.
    pub fn integers(name: &str, values: Vec<i64>, valid: Validity) -> TypedColumn {
        TypedColumn::new(name, valid, Values::Integers(values))
    }

    /// 64-bit floats, one per row.
    pub fn floats(name: &str, values: Vec<f64>, valid: Validity) -> TypedColumn {
        TypedColumn::new(name, valid, Values::Floats(values))
    }

    /// Text: row `i` is `data[ends[i-1]..ends[i]]`, which must be UTF-8 (the host checks).
    pub fn text(name: &str, ends: Vec<u32>, data: Vec<u8>, valid: Validity) -> TypedColumn {
        TypedColumn::new(name, valid, Values::Text { ends, data })
    }

    /// Nested values as JSON text, laid out as [`TypedColumn::text`].
    pub fn json(name: &str, ends: Vec<u32>, data: Vec<u8>, valid: Validity) -> TypedColumn {
        TypedColumn::new(name, valid, Values::Json { ends, data })
    }

    /// Text drawn from a dictionary: row `i` is value `keys[i]` of the dictionary, whose value `j` is
    /// `data[ends[j-1]..ends[j]]` (UTF-8, which the host checks). The keys of null rows are not read.
    pub fn dictionary(
        name: &str,
        keys: Vec<u32>,
        ends: Vec<u32>,
        data: Vec<u8>,
        valid: Validity,
    ) -> TypedColumn {
        TypedColumn::new(name, valid, Values::Dictionary { keys, ends, data })
    }

    /// Timestamps as counts of `unit` since 1970-01-01T00:00:00: instants in UTC where `utc`, wall-clock
    /// date-times that name no zone otherwise.
    pub fn timestamps(
        name: &str,
        unit: TimeUnit,
        utc: bool,
        values: Vec<i64>,
        valid: Validity,
    ) -> TypedColumn {
        TypedColumn::new(name, valid, Values::Timestamps { unit, utc, values })
    }

    fn new(name: &str, valid: Validity, values: Values) -> TypedColumn {
        TypedColumn { name: name.to_string(), valid, values }
    }

    /// The column's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many rows it holds.
    pub fn len(&self) -> usize {
        match &self.values {
            Values::Mixed(values) => values.len(),
            Values::Booleans(values) => values.len(),
            Values::Integers(values) | Values::Timestamps { values, .. } => values.len(),
            Values::Dictionary { keys, .. } => keys.len(),
            Values::Floats(values) => values.len(),
            Values::Text { ends, .. } | Values::Json { ends, .. } => ends.len(),
        }
    }

    /// Whether it holds no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The column as contract 1.3.0 hands it over: its buffers moved, not copied.
    pub(crate) fn into_wire(self) -> WireColumn {
        let values = match self.values {
            Values::Mixed(values) => {
                let column = values.into_column();
                WireValues::Mixed(TaggedValues { types: column.types, ends: column.ends, data: column.data })
            }
            Values::Booleans(values) => WireValues::Booleans(values.into_iter().map(u8::from).collect()),
            Values::Integers(values) => WireValues::Integers(values),
            Values::Floats(values) => WireValues::Floats(values),
            Values::Text { ends, data } => WireValues::Text(TextValues { ends, data }),
            Values::Json { ends, data } => WireValues::Json(TextValues { ends, data }),
            Values::Dictionary { keys, ends, data } => {
                WireValues::Dictionary(DictionaryValues { keys, values: TextValues { ends, data } })
            }
            Values::Timestamps { unit, utc, values } => {
                let unit = match unit {
                    TimeUnit::Second => WireUnit::Second,
                    TimeUnit::Millisecond => WireUnit::Millisecond,
                    TimeUnit::Microsecond => WireUnit::Microsecond,
                    TimeUnit::Nanosecond => WireUnit::Nanosecond,
                };
                WireValues::Timestamps(TimestampValues { unit, utc, values })
            }
        };
        WireColumn { name: self.name, valid: self.valid.into_wire(), values }
    }

    /// The column in the 1.0 layout, value by value: for a world without typed batches.
    pub(crate) fn into_tagged(self) -> Column {
        let rows = self.len();
        let values = match self.values {
            Values::Mixed(values) => return values.into_column(),
            values => values,
        };
        let mut column = ColumnValues::new(&self.name, rows);
        let mut text = String::new();
        for row in 0..rows {
            if !self.valid.is_valid(row) {
                column.push(Value::Null);
                continue;
            }
            let span = |ends: &[u32], data: &[u8], at: usize| {
                let start = if at == 0 { 0 } else { ends[at - 1] as usize };
                // The parser made these from `&str`s; a bad span is its bug, made loud here.
                String::from_utf8_lossy(&data[start..ends[at] as usize]).into_owned()
            };
            match &values {
                Values::Mixed(_) => unreachable!("returned above"),
                Values::Booleans(values) => column.push(Value::Boolean(values[row])),
                Values::Integers(values) => column.push(Value::Integer(values[row])),
                Values::Floats(values) => column.push(Value::Float(values[row])),
                Values::Text { ends, data } => column.push(Value::Text(&span(ends, data, row))),
                Values::Json { ends, data } => column.push(Value::Json(&span(ends, data, row))),
                Values::Dictionary { keys, ends, data } => {
                    column.push(Value::Text(&span(ends, data, keys[row] as usize)))
                }
                Values::Timestamps { unit, utc, values } => {
                    text.clear();
                    as_text::write_timestamp(&mut text, values[row], *unit, *utc)
                        .expect("a String takes any text");
                    column.push(Value::Text(&text));
                }
            }
        }
        column.into_column()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_column_in_the_1_0_layout_holds_the_same_values_with_its_nulls() {
        let stamps = TypedColumn::timestamps(
            "at",
            TimeUnit::Millisecond,
            true,
            vec![1_500, 0, -1_000],
            Validity::from_bitmap(vec![0b101]),
        );
        assert_eq!(stamps.len(), 3);
        let tagged = stamps.into_tagged();
        assert_eq!(tagged.name, "at");
        assert_eq!(tagged.types, vec![4, 0, 4]);
        assert_eq!(
            String::from_utf8(tagged.data).unwrap(),
            "1970-01-01T00:00:01.500Z1969-12-31T23:59:59.000Z"
        );

        let text = TypedColumn::text("name", vec![3, 3, 5], b"abcde".to_vec(), Validity::all()).into_tagged();
        assert_eq!((text.types, text.ends, text.data), (vec![4, 4, 4], vec![3, 3, 5], b"abcde".to_vec()));

        let names = TypedColumn::dictionary(
            "c",
            vec![1, 9, 0],
            vec![2, 5],
            b"abcde".to_vec(),
            Validity::from_bitmap(vec![0b101]),
        );
        let names = names.into_tagged();
        assert_eq!((names.types, names.data), (vec![4, 0, 4], b"cdeab".to_vec()));

        let numbers = TypedColumn::integers("n", vec![7, 0], Validity::from_bitmap(vec![0b01])).into_tagged();
        assert_eq!((numbers.types, numbers.ends), (vec![2, 0], vec![8, 8]));
    }
}
