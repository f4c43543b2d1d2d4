//! The value of a field as the scanner cut it, quotes and all: found in its bytes, or unescaped into a copy.
//!
//! Quotes are searched for, and a quoted field unescaped, 16 bytes at a time. A field's bytes are read
//! from a slice that goes on past it (the record and what follows it in the chunk), so that a block that
//! starts in a short field can still be read whole; only the last bytes of a chunk are read one at a time.
//! Unescaping copies each block whole and keeps what comes before its first quote: one loop with few
//! values live, which the engine compiles to faster code than a copy of each run between quotes
//! (`extend_from_slice`, a call out to the engine's `memory.copy`) and a search for the next quote.

use std::ops::Range;

/// The bytes searched or copied at once.
const BLOCK: usize = 16;

/// Where the value of a field lies.
pub(crate) enum Value {
    /// In the field's own bytes: the whole of an unquoted field, the inside of a quoted one.
    Within(Range<usize>),
    /// It has a doubled quote, or text after its closing quote: [`unescape_into`] makes it.
    Escaped,
}

/// The value of the field `field` of `bytes` (positions in `bytes`). Called for every field, so inlined:
/// most are unquoted, and cost a comparison.
#[inline(always)]
pub(crate) fn value_of(bytes: &[u8], field: Range<usize>, quote: u8) -> Value {
    if bytes.get(field.start) != Some(&quote) {
        return Value::Within(field);
    }
    match next_quote(bytes, field.start + 1, field.end, quote) {
        None => Value::Within(field.start + 1..field.end),
        Some(close) if close + 1 == field.end => Value::Within(field.start + 1..close),
        Some(_) => Value::Escaped,
    }
}

/// Appends the value of the quoted field `field` of `bytes`: the runs between quotes, a doubled quote as
/// one quote; the closing quote ends the quoted part, and whatever follows it is kept as it is.
///
/// Each step copies a block, whatever it holds, and keeps the part of it before its first quote: one loop
/// with few values live, which is what the engine's compiler makes fast code of.
pub(crate) fn unescape_into(data: &mut Vec<u8>, bytes: &[u8], field: Range<usize>, quote: u8) {
    // The value is shorter than the field: with a block more of room, every block copied fits.
    data.reserve(field.len() + BLOCK);
    let start = data.len();
    let out = data.as_mut_ptr();
    // What was written is never more than what was read: `written <= at - (field.start + 1)`.
    let (mut at, mut written) = (field.start + 1, 0);
    while at < field.end {
        let Some(block) = bytes.get(at..at + BLOCK) else {
            // The end of the chunk is near: the rest a byte at a time.
            // SAFETY: the `written` bytes after `start` were written below.
            unsafe { data.set_len(start + written) };
            return unescape_bytes(data, &bytes[at..field.end], quote);
        };
        let block: &[u8; BLOCK] = block.try_into().expect("a block");
        // SAFETY: `written < field.len()`, as `at < field.end`, so the block lands in the room reserved.
        unsafe { out.add(start + written).cast::<[u8; BLOCK]>().write_unaligned(*block) };
        let bits = quote_bits(block, quote);
        let before = if bits == 0 { BLOCK } else { bits.trailing_zeros() as usize };
        (at, written) = (at + before, written + before);
        if bits == 0 || at >= field.end {
            continue;
        }
        if at + 1 < field.end && bytes[at + 1] == quote {
            // SAFETY: as for the block, `at` being before the end; the quote overwrites the block's copy.
            unsafe { *out.add(start + written) = quote };
            (at, written) = (at + 2, written + 1);
        } else {
            // SAFETY: the `written` bytes after `start` were written above.
            unsafe { data.set_len(start + written) };
            data.extend_from_slice(&bytes[at + 1..field.end]);
            return;
        }
    }
    // Only a field without its closing quote, which the scanner never cuts, ends here: what was copied of
    // the bytes after it is not kept.
    // SAFETY: the bytes counted were written above.
    unsafe { data.set_len(start + written - (at - field.end)) };
}

/// As [`unescape_into`], a byte at a time, from `inner`: the rest of a quoted field after its opening quote.
fn unescape_bytes(data: &mut Vec<u8>, inner: &[u8], quote: u8) {
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        if b != quote {
            data.push(b);
        } else if bytes.as_slice().first() == Some(&quote) {
            data.push(quote);
            bytes.next();
        } else {
            data.extend_from_slice(bytes.as_slice());
            return;
        }
    }
}

/// The first `quote` in `bytes[from..end]`.
#[inline(always)]
fn next_quote(bytes: &[u8], mut from: usize, end: usize, quote: u8) -> Option<usize> {
    while from < end {
        let Some(block) = bytes.get(from..from + BLOCK) else {
            return bytes[from..end].iter().position(|&b| b == quote).map(|i| from + i);
        };
        let bits = quote_bits(block.try_into().expect("a block"), quote);
        if bits != 0 {
            let at = from + bits.trailing_zeros() as usize;
            return (at < end).then_some(at);
        }
        from += BLOCK;
    }
    None
}

/// Bit `i` is set where byte `i` of `block` is `quote`.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn quote_bits(block: &[u8; BLOCK], quote: u8) -> u32 {
    use core::arch::wasm32::{u8x16_bitmask, u8x16_eq, u8x16_splat, v128, v128_load};
    // SAFETY: `block` is 16 bytes, and `v128_load` needs no alignment.
    let lane = unsafe { v128_load(block.as_ptr() as *const v128) };
    u8x16_bitmask(u8x16_eq(lane, u8x16_splat(quote))) as u32
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn quote_bits(block: &[u8; BLOCK], quote: u8) -> u32 {
    block.iter().enumerate().fold(0, |bits, (i, &b)| bits | u32::from(b == quote) << i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the one field of `line` (followed by `after` in the chunk), unescaped where it must be.
    fn value(line: &str, after: &str) -> String {
        let bytes = format!("{line}{after}");
        let bytes = bytes.as_bytes();
        let field = 0..line.len();
        let mut data = b"kept".to_vec();
        match value_of(bytes, field.clone(), b'"') {
            Value::Within(range) => String::from_utf8(bytes[range].to_vec()).unwrap(),
            Value::Escaped => {
                unescape_into(&mut data, bytes, field, b'"');
                let value = String::from_utf8(data).unwrap();
                value.strip_prefix("kept").expect("what was in the buffer is kept").to_string()
            }
        }
    }

    #[test]
    fn values_are_found_and_unescaped_in_blocks_or_bytes_wherever_the_chunk_ends() {
        let long = "a".repeat(40);
        let cases = [
            ("plain", "plain".to_string()),
            ("\"\"", String::new()),
            ("\"a, b\"", "a, b".into()),
            ("\"say \"\"hi\"\"\"", "say \"hi\"".into()),
            ("\"\"\"\"", "\"".into()),
            ("\"text\" after", "text after".into()),
            (&format!("\"{long}\"\"{long}\"\"\""), format!("{long}\"{long}\"")),
            (&format!("\"{long}\"\"x\""), format!("{long}\"x")),
            (&format!("\"x\"\"{long}\""), format!("x\"{long}")),
            (&format!("\"{long}\" {long}"), format!("{long} {long}")),
            // No closing quote (not a field the scanner cuts, but never read or written out of bounds).
            ("\"ab\"\"cd", "ab\"cd".into()),
            (&format!("\"{long}\"\"{long}"), format!("{long}\"{long}")),
        ];
        for (line, expected) in &cases {
            // Followed by nothing (the end of the chunk), by a little, and by more than a block; the bytes
            // after the field, quotes among them, are never taken for its own.
            for after in ["", ",\"", &format!(",\"\"{long}\"\n")] {
                assert_eq!(&value(line, after), expected, "{line:?} followed by {after:?}");
            }
        }
    }
}
