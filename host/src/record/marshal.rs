//! MessagePack ⇄ CPython `marshal` transcoding, for functions that declare the
//! `python-marshal` row encoding (the Python SDK).
//!
//! The format is CPython's `marshal` **version 2** for a small subset of types:
//!
//! | marshal (type byte)                      | MessagePack                      |
//! |------------------------------------------|----------------------------------|
//! | `N` None, `T` True, `F` False            | nil, true, false                 |
//! | `i` int32, `l` long (15-bit digits)      | int (the long must fit i64/u64)  |
//! | `g` binary float (f64, little-endian)    | float 64 (float 32 is widened)   |
//! | `u` str (u32 length + UTF-8)             | str                              |
//! | `s` bytes                                | bin                              |
//! | `[` list, `(` tuple                      | array (the host writes lists)    |
//! | `{` dict (key, value pairs, then `0`)    | map                              |
//!
//! Version 2 writes no back-references (`FLAG_REF`, version ≥ 3) and every str as
//! `TYPE_UNICODE`. When reading, the host also takes the str variants of later versions
//! (`t` interned, `a`/`A`/`z`/`Z` ASCII) and the small tuple `)`; it rejects everything
//! else with a clear error: sets, complex numbers, `Ellipsis`, code objects,
//! back-references, MessagePack extension values, ints beyond 64 bits. A rejected value
//! that can still be stepped over (a set, a complex) fails its row only.
//!
//! Output batches may be *packed*: one marshal list holding every output row (what one
//! `marshal.dumps(rows, 2)` writes), sent with an empty `offsets` list; see
//! [`packed_marshal_to_msgpack`].

use std::fmt;

/// Nesting deeper than this is rejected (both directions), well inside CPython's own limit.
pub const MAX_DEPTH: usize = 256;

/// Why a value cannot be transcoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarshalError(pub String);

impl fmt::Display for MarshalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MarshalError {}

fn err<T>(msg: impl Into<String>) -> Result<T, MarshalError> {
    Err(MarshalError(msg.into()))
}

// ---------------------------------------------------------------------------------------
// MessagePack -> marshal

/// Transcode one MessagePack value (exactly: trailing bytes are an error) to marshal v2,
/// appending to `out` (on error `out` may hold a partial value; the caller truncates).
pub fn msgpack_to_marshal(value: &[u8], out: &mut Vec<u8>) -> Result<(), MarshalError> {
    let mut r = Reader { buf: value, pos: 0 };
    mp_value(&mut r, out, 0, false)?;
    if r.pos != value.len() {
        return err(format!("{} trailing bytes after the MessagePack value", value.len() - r.pos));
    }
    Ok(())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], MarshalError> {
        match self.buf.get(self.pos..self.pos.wrapping_add(n)) {
            Some(s) if self.pos.checked_add(n).is_some() => {
                self.pos += n;
                Ok(s)
            }
            _ => err("truncated value"),
        }
    }
    #[inline]
    fn u8(&mut self) -> Result<u8, MarshalError> {
        Ok(self.take(1)?[0])
    }
    #[inline]
    fn be<const N: usize>(&mut self) -> Result<[u8; N], MarshalError> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }
    #[inline]
    fn le_i32(&mut self) -> Result<i32, MarshalError> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().expect("length checked")))
    }
}

#[inline]
fn w_int(out: &mut Vec<u8>, v: i128) {
    if let Ok(small) = i32::try_from(v) {
        out.push(b'i');
        out.extend_from_slice(&small.to_le_bytes());
        return;
    }
    // TYPE_LONG: signed digit count, then base-2^15 digits, least significant first.
    let negative = v < 0;
    let mut m = v.unsigned_abs();
    let mut digits = Vec::with_capacity(5);
    while m != 0 {
        digits.push((m & 0x7fff) as u16);
        m >>= 15;
    }
    let n = digits.len() as i32;
    out.push(b'l');
    out.extend_from_slice(&(if negative { -n } else { n }).to_le_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_le_bytes());
    }
}

#[inline]
fn w_len(out: &mut Vec<u8>, tag: u8, len: usize) -> Result<(), MarshalError> {
    let len = i32::try_from(len).map_err(|_| MarshalError("value too large for marshal".into()))?;
    out.push(tag);
    out.extend_from_slice(&len.to_le_bytes());
    Ok(())
}

fn mp_value(r: &mut Reader<'_>, out: &mut Vec<u8>, depth: usize, as_key: bool) -> Result<(), MarshalError> {
    if depth > MAX_DEPTH {
        return err(format!("values nested deeper than {MAX_DEPTH} levels"));
    }
    let m = r.u8()?;
    match m {
        0x00..=0x7f => w_int(out, i128::from(m)),
        0xe0..=0xff => w_int(out, i128::from(m as i8)),
        0xc0 => out.push(b'N'),
        0xc2 => out.push(b'F'),
        0xc3 => out.push(b'T'),
        0xcc => w_int(out, i128::from(r.u8()?)),
        0xcd => w_int(out, i128::from(u16::from_be_bytes(r.be()?))),
        0xce => w_int(out, i128::from(u32::from_be_bytes(r.be()?))),
        0xcf => w_int(out, i128::from(u64::from_be_bytes(r.be()?))),
        0xd0 => w_int(out, i128::from(r.u8()? as i8)),
        0xd1 => w_int(out, i128::from(i16::from_be_bytes(r.be()?))),
        0xd2 => w_int(out, i128::from(i32::from_be_bytes(r.be()?))),
        0xd3 => w_int(out, i128::from(i64::from_be_bytes(r.be()?))),
        0xca => {
            out.push(b'g');
            out.extend_from_slice(&f64::from(f32::from_be_bytes(r.be()?)).to_le_bytes());
        }
        0xcb => {
            out.push(b'g');
            out.extend_from_slice(&f64::from_be_bytes(r.be()?).to_le_bytes());
        }
        0xa0..=0xbf => mp_str(r, out, usize::from(m & 0x1f))?,
        0xd9 => {
            let n = usize::from(r.u8()?);
            mp_str(r, out, n)?
        }
        0xda => {
            let n = usize::from(u16::from_be_bytes(r.be()?));
            mp_str(r, out, n)?
        }
        0xdb => {
            let n = u32::from_be_bytes(r.be()?) as usize;
            mp_str(r, out, n)?
        }
        0xc4..=0xc6 => {
            let n = match m {
                0xc4 => usize::from(r.u8()?),
                0xc5 => usize::from(u16::from_be_bytes(r.be()?)),
                _ => u32::from_be_bytes(r.be()?) as usize,
            };
            let bytes = r.take(n)?;
            w_len(out, b's', n)?;
            out.extend_from_slice(bytes);
        }
        0x90..=0x9f | 0xdc | 0xdd => {
            if as_key {
                return err("an array as a map key (a Python dict key must be hashable)");
            }
            let n = match m {
                0xdc => usize::from(u16::from_be_bytes(r.be()?)),
                0xdd => u32::from_be_bytes(r.be()?) as usize,
                _ => usize::from(m & 0x0f),
            };
            w_len(out, b'[', n)?;
            for _ in 0..n {
                mp_value(r, out, depth + 1, false)?;
            }
        }
        0x80..=0x8f | 0xde | 0xdf => {
            if as_key {
                return err("a map as a map key (a Python dict key must be hashable)");
            }
            let n = match m {
                0xde => usize::from(u16::from_be_bytes(r.be()?)),
                0xdf => u32::from_be_bytes(r.be()?) as usize,
                _ => usize::from(m & 0x0f),
            };
            out.push(b'{');
            for _ in 0..n {
                mp_value(r, out, depth + 1, true)?;
                mp_value(r, out, depth + 1, false)?;
            }
            out.push(b'0');
        }
        0xc7..=0xc9 | 0xd4..=0xd8 => {
            return err("a MessagePack extension value (not supported by the python-marshal encoding)");
        }
        _ => return err(format!("invalid MessagePack marker 0x{m:02x}")),
    }
    Ok(())
}

#[inline]
fn mp_str(r: &mut Reader<'_>, out: &mut Vec<u8>, n: usize) -> Result<(), MarshalError> {
    let bytes = r.take(n)?;
    if std::str::from_utf8(bytes).is_err() {
        return err("a MessagePack string that is not valid UTF-8");
    }
    w_len(out, b'u', n)?;
    out.extend_from_slice(bytes);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// marshal -> MessagePack

/// Transcode one marshal value (exactly: trailing bytes are an error) to MessagePack,
/// appending to `out` (on error `out` may hold a partial value; the caller truncates).
pub fn marshal_to_msgpack(value: &[u8], out: &mut Vec<u8>) -> Result<(), MarshalError> {
    let mut r = Reader { buf: value, pos: 0 };
    let mut rejected = None;
    ms_value(&mut r, out, 0, &mut rejected)?;
    if let Some(e) = rejected {
        return Err(e);
    }
    if r.pos != value.len() {
        return err(format!("{} trailing bytes after the marshal value", value.len() - r.pos));
    }
    Ok(())
}

/// The rows of a packed output: `packed` is one marshal list (`[`, an i32 count, the rows).
///
/// Calls `row(Ok(msgpack))` or `row(Err(reason))` once per list item, in order. A row holding
/// a rejected but well-formed value (a set, say) fails alone. Bytes that cannot be parsed at
/// all fail that row and every row after it (their boundaries are unknown); a malformed list
/// header returns `Err` before any row.
pub fn packed_marshal_to_msgpack(
    packed: &[u8],
    scratch: &mut Vec<u8>,
    mut row: impl FnMut(Result<&[u8], MarshalError>),
) -> Result<usize, MarshalError> {
    let mut r = Reader { buf: packed, pos: 0 };
    if r.u8()? != b'[' {
        return err("a packed output batch must be one marshal list");
    }
    let n = usize::try_from(r.le_i32()?).map_err(|_| MarshalError("negative list length".into()))?;
    for i in 0..n {
        scratch.clear();
        let mut rejected = None;
        match ms_value(&mut r, scratch, 0, &mut rejected) {
            Ok(()) => match rejected {
                None => row(Ok(scratch)),
                Some(e) => row(Err(e)),
            },
            Err(e) => {
                let e = MarshalError(format!("{e} (the rows after it cannot be read either)"));
                for _ in i..n {
                    row(Err(e.clone()));
                }
                return Ok(n);
            }
        }
    }
    if r.pos != packed.len() {
        return err(format!("{} trailing bytes after the packed output list", packed.len() - r.pos));
    }
    Ok(n)
}

/// Reads one value. `Err` when the bytes cannot be parsed (the value's end is unknown);
/// `rejected` set when the value parsed but holds something outside the subset.
fn ms_value(
    r: &mut Reader<'_>,
    out: &mut Vec<u8>,
    depth: usize,
    rejected: &mut Option<MarshalError>,
) -> Result<(), MarshalError> {
    if depth > MAX_DEPTH {
        return err(format!("values nested deeper than {MAX_DEPTH} levels"));
    }
    let t = r.u8()?;
    if t & 0x80 != 0 {
        return err(
            "a marshal back-reference flag (marshal version 3 or later; the python-marshal encoding is version 2)",
        );
    }
    match t {
        b'N' => out.push(0xc0),
        b'T' => out.push(0xc3),
        b'F' => out.push(0xc2),
        b'i' => {
            let v = r.le_i32()?;
            rmp::encode::write_sint(out, i64::from(v)).expect("Vec write");
        }
        b'l' => {
            let n = r.le_i32()?;
            let count = n.unsigned_abs() as usize;
            let digits = r.take(count.checked_mul(2).ok_or_else(|| MarshalError("long too large".into()))?)?;
            let mut v: u128 = 0;
            for d in digits.chunks_exact(2).rev() {
                let d = u16::from_le_bytes([d[0], d[1]]);
                if d > 0x7fff {
                    return err("a marshal long digit out of range");
                }
                // 8 digits hold 120 bits; more (normalized) is surely beyond 64 bits.
                v = (v << 15) | u128::from(d);
            }
            let value: Option<i128> = if count > 8 {
                None
            } else if n < 0 {
                Some(-(v as i128)).filter(|&x| x >= i128::from(i64::MIN))
            } else {
                Some(v as i128).filter(|&x| x <= i128::from(u64::MAX))
            };
            match value {
                Some(x) if x < 0 => {
                    rmp::encode::write_sint(out, x as i64).expect("Vec write");
                }
                Some(x) => {
                    rmp::encode::write_uint(out, x as u64).expect("Vec write");
                }
                None => reject(rejected, "an int beyond 64 bits"),
            }
        }
        b'g' => {
            let v = f64::from_le_bytes(r.take(8)?.try_into().expect("length checked"));
            out.push(0xcb);
            out.extend_from_slice(&v.to_be_bytes());
        }
        b'u' | b't' | b'a' | b'A' => {
            let n = len_of(r)?;
            ms_str(r, out, n, rejected)?;
        }
        b'z' | b'Z' => {
            let n = usize::from(r.u8()?);
            ms_str(r, out, n, rejected)?;
        }
        b's' => {
            let n = len_of(r)?;
            let bytes = r.take(n)?;
            rmp::encode::write_bin(out, bytes).expect("Vec write");
        }
        b'[' | b'(' | b')' => {
            let n = if t == b')' { usize::from(r.u8()?) } else { len_of(r)? };
            rmp::encode::write_array_len(out, u32::try_from(n).map_err(|_| MarshalError("list too long".into()))?)
                .expect("Vec write");
            for _ in 0..n {
                ms_value(r, out, depth + 1, rejected)?;
            }
        }
        b'{' => {
            // Pairs up to the `0` terminator; the MessagePack length comes first, so write a
            // one-byte fixmap header and widen it in the rare case of more than 15 entries.
            let header = out.len();
            out.push(0x80);
            let mut n: usize = 0;
            loop {
                if r.buf.get(r.pos) == Some(&b'0') {
                    r.pos += 1;
                    break;
                }
                ms_value(r, out, depth + 1, rejected)?;
                ms_value(r, out, depth + 1, rejected)?;
                n += 1;
            }
            if n <= 15 {
                out[header] = 0x80 | n as u8;
            } else {
                let wide: Vec<u8> = if let Ok(n16) = u16::try_from(n) {
                    let mut h = vec![0xde];
                    h.extend_from_slice(&n16.to_be_bytes());
                    h
                } else {
                    let n32 = u32::try_from(n).map_err(|_| MarshalError("dict too large".into()))?;
                    let mut h = vec![0xdf];
                    h.extend_from_slice(&n32.to_be_bytes());
                    h
                };
                out.splice(header..header + 1, wide);
            }
        }
        // Well-formed values outside the subset: step over them, fail the row.
        b'<' | b'>' => {
            let n = len_of(r)?;
            let mut ignored = Vec::new();
            for _ in 0..n {
                ms_value(r, &mut ignored, depth + 1, rejected)?;
            }
            reject(rejected, if t == b'<' { "a set" } else { "a frozenset" });
        }
        b'y' => {
            r.take(16)?;
            reject(rejected, "a complex number");
        }
        b'.' => reject(rejected, "Ellipsis"),
        b'S' => reject(rejected, "StopIteration"),
        b'0' => return err("an unexpected marshal NULL (a dict terminator outside a dict)"),
        b'c' => return err("a code object"),
        b'r' => return err("a marshal back-reference (marshal version 3 or later)"),
        other => return err(format!("unsupported marshal type {:?}", char::from(other))),
    }
    Ok(())
}

#[inline]
fn len_of(r: &mut Reader<'_>) -> Result<usize, MarshalError> {
    usize::try_from(r.le_i32()?).map_err(|_| MarshalError("negative marshal length".into()))
}

#[inline]
fn reject(rejected: &mut Option<MarshalError>, what: &str) {
    if rejected.is_none() {
        *rejected = Some(MarshalError(format!("{what} cannot be converted to MessagePack")));
    }
}

#[inline]
fn ms_str(
    r: &mut Reader<'_>,
    out: &mut Vec<u8>,
    n: usize,
    rejected: &mut Option<MarshalError>,
) -> Result<(), MarshalError> {
    let bytes = r.take(n)?;
    match std::str::from_utf8(bytes) {
        Ok(s) => rmp::encode::write_str(out, s).expect("Vec write"),
        Err(_) => {
            out.push(0xc0);
            reject(rejected, "a str with lone surrogates");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rmpv::Value;

    fn mp(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).unwrap();
        out
    }

    fn to_marshal(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        msgpack_to_marshal(&mp(v), &mut out).unwrap();
        out
    }

    fn back(m: &[u8]) -> Value {
        let mut out = Vec::new();
        marshal_to_msgpack(m, &mut out).unwrap();
        rmpv::decode::read_value(&mut out.as_slice()).unwrap()
    }

    #[test]
    fn known_encodings_match_cpython_marshal_v2() {
        // marshal.dumps(x, 2) in CPython 3.11 / 3.14.
        assert_eq!(to_marshal(&Value::Nil), b"N");
        assert_eq!(to_marshal(&Value::from(true)), b"T");
        assert_eq!(to_marshal(&Value::from(1)), b"i\x01\x00\x00\x00");
        assert_eq!(to_marshal(&Value::from(-2)), b"i\xfe\xff\xff\xff");
        // 2**31 -> TYPE_LONG, 3 digits: 0, 0, 2
        assert_eq!(to_marshal(&Value::from(1u64 << 31)), b"l\x03\x00\x00\x00\x00\x00\x00\x00\x02\x00");
        assert_eq!(to_marshal(&Value::from(-(1i64 << 31) - 1)), b"l\xfd\xff\xff\xff\x01\x00\x00\x00\x02\x00");
        assert_eq!(to_marshal(&Value::from(0.5)), b"g\x00\x00\x00\x00\x00\x00\xe0\x3f");
        assert_eq!(to_marshal(&Value::from("zoë")), b"u\x04\x00\x00\x00zo\xc3\xab");
        assert_eq!(to_marshal(&Value::Binary(vec![1, 2])), b"s\x02\x00\x00\x00\x01\x02");
        assert_eq!(to_marshal(&Value::Array(vec![Value::Nil])), b"[\x01\x00\x00\x00N");
        assert_eq!(
            to_marshal(&Value::Map(vec![(Value::from("a"), Value::from(1))])),
            b"{u\x01\x00\x00\x00ai\x01\x00\x00\x000"
        );
    }

    #[test]
    fn rejects_what_python_cannot_hold_or_marshal_v2_never_writes() {
        let ext = mp(&Value::Ext(1, vec![0]));
        assert!(msgpack_to_marshal(&ext, &mut Vec::new()).unwrap_err().0.contains("extension"));
        let key = mp(&Value::Map(vec![(Value::Array(vec![]), Value::Nil)]));
        assert!(msgpack_to_marshal(&key, &mut Vec::new()).unwrap_err().0.contains("hashable"));
        assert!(marshal_to_msgpack(b"\xe9\x00\x00\x00\x00", &mut Vec::new()).unwrap_err().0.contains("back-reference"));
        assert!(marshal_to_msgpack(b"<\x01\x00\x00\x00N", &mut Vec::new()).unwrap_err().0.contains("a set"));
        assert!(marshal_to_msgpack(b"NN", &mut Vec::new()).unwrap_err().0.contains("trailing"));
        assert!(marshal_to_msgpack(b"u\x05\x00\x00\x00ab", &mut Vec::new()).unwrap_err().0.contains("truncated"));
        // 2**64: three... a long of 5 digits beyond u64
        let big = b"l\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10\x00";
        assert!(marshal_to_msgpack(big, &mut Vec::new()).unwrap_err().0.contains("64 bits"));
    }

    #[test]
    fn longs_at_the_64_bit_edges() {
        for v in [Value::from(u64::MAX), Value::from(i64::MIN), Value::from(i64::MAX), Value::from(1u64 << 32)] {
            assert_eq!(back(&to_marshal(&v)), v);
        }
    }

    #[test]
    fn dicts_with_many_entries_get_a_wide_header() {
        for n in [15usize, 16, 300, 70_000] {
            let v = Value::Map((0..n).map(|i| (Value::from(i as u64), Value::Nil)).collect());
            let m = to_marshal(&v);
            let mut out = Vec::new();
            marshal_to_msgpack(&m, &mut out).unwrap();
            assert_eq!(out, mp(&v), "{n} entries");
        }
    }

    #[test]
    fn packed_rows_fail_alone_when_well_formed() {
        // [ {"a": 1}, {1, 2} (a set), "x" ]
        let mut packed = b"[\x03\x00\x00\x00".to_vec();
        packed.extend_from_slice(b"{u\x01\x00\x00\x00ai\x01\x00\x00\x000");
        packed.extend_from_slice(b"<\x02\x00\x00\x00i\x01\x00\x00\x00i\x02\x00\x00\x00");
        packed.extend_from_slice(b"u\x01\x00\x00\x00x");
        let mut rows = Vec::new();
        let n = packed_marshal_to_msgpack(&packed, &mut Vec::new(), |r| rows.push(r.map(|b| b.to_vec()))).unwrap();
        assert_eq!(n, 3);
        assert_eq!(rows[0].as_ref().unwrap(), &mp(&Value::Map(vec![(Value::from("a"), Value::from(1))])));
        assert!(rows[1].as_ref().unwrap_err().0.contains("a set"));
        assert_eq!(rows[2].as_ref().unwrap(), &mp(&Value::from("x")));
        // A code object cannot be stepped over: it and the rows after it fail.
        let packed = b"[\x02\x00\x00\x00c\x00N".to_vec();
        let mut rows = Vec::new();
        packed_marshal_to_msgpack(&packed, &mut Vec::new(), |r| rows.push(r.is_ok())).unwrap();
        assert_eq!(rows, [false, false]);
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Nil),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan()).prop_map(Value::from),
            ".{0,20}".prop_map(Value::from),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::Binary),
        ];
        leaf.prop_recursive(4, 64, 20, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..20).prop_map(Value::Array),
                proptest::collection::vec(("[a-z]{0,8}".prop_map(Value::from), inner), 0..20).prop_map(|kv| {
                    // Python dicts have unique keys.
                    let mut seen = std::collections::HashSet::new();
                    Value::Map(kv.into_iter().filter(|(k, _)| seen.insert(k.as_str().unwrap().to_string())).collect())
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn msgpack_marshal_msgpack_round_trips(v in value()) {
            let bytes = mp(&v);
            let mut m = Vec::new();
            msgpack_to_marshal(&bytes, &mut m).unwrap();
            let mut again = Vec::new();
            marshal_to_msgpack(&m, &mut again).unwrap();
            prop_assert_eq!(rmpv::decode::read_value(&mut again.as_slice()).unwrap(), v);
        }
    }
}
