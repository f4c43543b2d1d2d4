//! Which committed files a merge must read. A merge takes out of the table every row whose key a row of the
//! group has, and so reads each committed file to find them; but a file whose statistics (the minimum and
//! maximum of each column, which delta-rs records in every file's Add action) show that none of the
//! group's keys can be in it keeps all its rows, and is left unread. Where keys grow over time (ids, order
//! numbers, timestamps), a commit then reads the few files whose key ranges its rows touch, not the table.
//!
//! The pruning only ever keeps a file it could have skipped, never the reverse: a file without statistics,
//! a key column without a minimum and maximum (all nulls, or a partition column, whose values are not in
//! the file), statistics of another type than the group's values, and float keys that include NaN (which
//! Parquet leaves out of the minimum and maximum) all mean "read it". Parquet shortens long text
//! statistics, but a shortened minimum is a prefix (no greater than the true one) and a shortened maximum
//! is rounded up, so a range still holds every value of its file.

use deltalake::arrow::array::{Array, AsArray, RecordBatch as ArrowBatch};
use deltalake::arrow::datatypes::{DataType as ArrowType, Float64Type, Int64Type};
use serde_json::Value as Json;

/// The group's values of each key column, sorted, for the files to be tested against.
pub struct GroupKeys {
    columns: Vec<(String, Sorted)>,
}

/// One key column's values in the group.
enum Sorted {
    Integers(Vec<i64>),
    Floats(Vec<f64>),
    Texts(Vec<String>),
    /// Values no file can be tested against (booleans, a NaN, or batches that disagree on the type).
    Untestable,
}

impl GroupKeys {
    /// The values of the `key` columns in the group's rows (after they were deduplicated), nulls left out:
    /// a row without a key is never merged.
    pub fn of(batches: &[ArrowBatch], key: &[String]) -> GroupKeys {
        let columns = key.iter().map(|name| (name.clone(), Sorted::of(batches, name))).collect();
        GroupKeys { columns }
    }

    /// Whether a file with these statistics (its Add action's `stats`, JSON) may hold a row whose key a
    /// row of the group has: false only where some key column's range in the file holds none of the
    /// group's values of that column.
    pub fn may_be_in(&self, stats: Option<&str>) -> bool {
        let Some(stats) = stats.and_then(|s| serde_json::from_str::<Json>(s).ok()) else { return true };
        self.columns.iter().all(|(name, values)| {
            let (Some(min), Some(max)) = (stats["minValues"].get(name), stats["maxValues"].get(name)) else {
                return true;
            };
            values.any_within(min, max)
        })
    }
}

impl Sorted {
    fn of(batches: &[ArrowBatch], name: &str) -> Sorted {
        let columns: Vec<_> = batches.iter().filter_map(|b| b.column_by_name(name)).collect();
        let Some(kind) = columns.first().map(|c| c.data_type().clone()) else { return Sorted::Untestable };
        if columns.iter().any(|c| c.data_type() != &kind) {
            return Sorted::Untestable;
        }
        match kind {
            ArrowType::Int64 => {
                let mut values: Vec<i64> =
                    columns.iter().flat_map(|c| c.as_primitive::<Int64Type>().iter().flatten()).collect();
                values.sort_unstable();
                Sorted::Integers(values)
            }
            ArrowType::Float64 => {
                let mut values: Vec<f64> =
                    columns.iter().flat_map(|c| c.as_primitive::<Float64Type>().iter().flatten()).collect();
                if values.iter().any(|v| v.is_nan()) {
                    return Sorted::Untestable;
                }
                values.sort_unstable_by(f64::total_cmp);
                Sorted::Floats(values)
            }
            ArrowType::Utf8 => {
                let mut values: Vec<String> = columns
                    .iter()
                    .flat_map(|c| c.as_string::<i32>().iter().flatten().map(str::to_string))
                    .collect();
                values.sort_unstable();
                Sorted::Texts(values)
            }
            _ => Sorted::Untestable,
        }
    }

    /// Whether any value lies in `min..=max` (statistics of the file); true where the bounds are not of
    /// the values' type.
    fn any_within(&self, min: &Json, max: &Json) -> bool {
        fn within<T: PartialOrd>(sorted: &[T], min: Option<T>, max: Option<T>) -> bool {
            let (Some(min), Some(max)) = (min, max) else { return true };
            let first = sorted.partition_point(|v| *v < min);
            sorted.get(first).is_some_and(|v| *v <= max)
        }
        match self {
            Sorted::Integers(values) => within(values, min.as_i64(), max.as_i64()),
            // -0.0 and 0.0 compare equal here, as Parquet's statistics take them: a range that holds one
            // holds the other.
            Sorted::Floats(values) => within(values, min.as_f64(), max.as_f64()),
            Sorted::Texts(values) => {
                within(values, min.as_str().map(str::to_string), max.as_str().map(str::to_string))
            }
            Sorted::Untestable => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
    use deltalake::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> ArrowBatch {
        let fields: Vec<Field> =
            columns.iter().map(|(name, array)| Field::new(*name, array.data_type().clone(), true)).collect();
        ArrowBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, a)| a).collect())
            .unwrap()
    }

    fn stats(min: &str, max: &str) -> String {
        format!("{{\"numRecords\":10,\"minValues\":{min},\"maxValues\":{max},\"nullCount\":{{}}}}")
    }

    fn ids(values: Vec<Option<i64>>) -> ArrowBatch {
        batch(vec![("id", Arc::new(Int64Array::from(values)))])
    }

    #[test]
    fn a_file_whose_integer_range_holds_none_of_the_keys_is_skipped_and_one_that_holds_one_is_read() {
        let keys = GroupKeys::of(&[ids(vec![Some(5), None]), ids(vec![Some(40)])], &["id".to_string()]);
        let range = |min: i64, max: i64| stats(&format!("{{\"id\":{min}}}"), &format!("{{\"id\":{max}}}"));
        assert!(!keys.may_be_in(Some(&range(10, 30))), "between the keys");
        assert!(!keys.may_be_in(Some(&range(41, 90))), "above them");
        assert!(!keys.may_be_in(Some(&range(-3, 4))), "below them");
        assert!(keys.may_be_in(Some(&range(5, 5))), "a bound is a key");
        assert!(keys.may_be_in(Some(&range(30, 40))));
        assert!(keys.may_be_in(Some(&range(1, 100))));
    }

    #[test]
    fn text_keys_compare_as_bytes_and_a_shortened_maximum_still_holds_its_values() {
        let names = |v: Vec<&str>| batch(vec![("sku", Arc::new(StringArray::from(v)))]);
        let keys = GroupKeys::of(&[names(vec!["b-7", "k-1"])], &["sku".to_string()]);
        let range = |min: &str, max: &str| {
            stats(&format!("{{\"sku\":\"{min}\"}}"), &format!("{{\"sku\":\"{max}\"}}"))
        };
        assert!(!keys.may_be_in(Some(&range("c", "j"))));
        assert!(!keys.may_be_in(Some(&range("B", "a"))), "upper case sorts first");
        assert!(keys.may_be_in(Some(&range("a", "b-8"))));
        // Parquet's shortening of `k-1` to the prefix `k` as a minimum, rounded up to `l` as a maximum.
        assert!(keys.may_be_in(Some(&range("k", "l"))));
    }

    #[test]
    fn every_key_column_must_have_a_value_in_its_range_for_the_file_to_be_read() {
        let rows = batch(vec![
            ("country", Arc::new(StringArray::from(vec!["fr", "de"])) as ArrayRef),
            ("id", Arc::new(Int64Array::from(vec![1, 2]))),
        ]);
        let keys = GroupKeys::of(&[rows], &["country".to_string(), "id".to_string()]);
        let both = |country: &str, ids: (i64, i64)| {
            stats(
                &format!("{{\"country\":\"{country}\",\"id\":{}}}", ids.0),
                &format!("{{\"country\":\"{country}\",\"id\":{}}}", ids.1),
            )
        };
        assert!(keys.may_be_in(Some(&both("fr", (1, 9)))));
        assert!(!keys.may_be_in(Some(&both("fr", (3, 9)))), "the ids are out of range");
        assert!(!keys.may_be_in(Some(&both("it", (1, 9)))), "the country is");
    }

    #[test]
    fn whatever_cannot_be_tested_is_read() {
        let keys = GroupKeys::of(&[ids(vec![Some(5)])], &["id".to_string()]);
        assert!(keys.may_be_in(None), "no statistics");
        assert!(keys.may_be_in(Some("not json")));
        assert!(keys.may_be_in(Some(&stats("{}", "{}"))), "no range for the key (all null, or a partition)");
        assert!(keys.may_be_in(Some(&stats("{\"id\":\"a\"}", "{\"id\":\"z\"}"))), "a range of another type");

        let floats = |v: Vec<f64>| batch(vec![("x", Arc::new(Float64Array::from(v)))]);
        let range = stats("{\"x\":10.0}", "{\"x\":20.0}");
        let nan = GroupKeys::of(&[floats(vec![1.0, f64::NAN])], &["x".to_string()]);
        assert!(nan.may_be_in(Some(&range)), "Parquet leaves NaN out of the range");
        let plain = GroupKeys::of(&[floats(vec![1.0, 25.5])], &["x".to_string()]);
        assert!(!plain.may_be_in(Some(&range)));

        let flags = batch(vec![("x", Arc::new(BooleanArray::from(vec![true])))]);
        assert!(GroupKeys::of(&[flags], &["x".to_string()]).may_be_in(Some(&range)), "booleans");
        let whole = batch(vec![("x", Arc::new(Int64Array::from(vec![3])) as ArrayRef)]);
        let mixed = GroupKeys::of(&[floats(vec![1.0]), whole], &["x".to_string()]);
        assert!(mixed.may_be_in(Some(&range)), "batches that disagree on the column's type");
    }
}
