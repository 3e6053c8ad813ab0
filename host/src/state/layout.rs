//! Byte layout of the entries in an operator's sled tree.
//!
//! Every entry starts with a tag byte that says what it is:
//!
//! | tag | key | value |
//! |---|---|---|
//! | `k` keyed state | `kg u16 BE, varint len, key, varint len, namespace, state id u16 BE, suffix` | header + user bytes |
//! | `t` timer | `domain u8, kg u16 BE, time (order-preserving i64 BE), varint len, key, varint len, namespace` | empty |
//! | `b` broadcast | `instance u16 BE, state id u16 BE, user key` | header + user bytes |
//! | `m` metadata | `"state/" name` | `version, kind, state id u16 BE` |
//! | `w` redo record | `instance u16 BE [checkpoint u64 BE]` | the changes of a flush in progress, or of a checkpoint's epoch (see `flush.rs`) |
//!
//! The keyed suffix is empty for value state, a `u64 BE` sequence number for list state and
//! the raw user key for map state.
//!
//! Invariants (tested below):
//! - The key and namespace are length-prefixed, so `(key group, key, namespace)` is decoded
//!   from the front without ambiguity: the prefix of one key never prefixes an entry of
//!   another key, even when one key's bytes are a prefix of the other's.
//! - Keyed entries of one key group form one contiguous range (`k | kg`); so do the timers of
//!   one key group and domain, ordered by time.
//! - State ids are fixed-width, so a map's user keys are taken raw: the entries of one map
//!   of one key are exactly the entries under `prefix | state id`.

use super::TimeDomain;

pub(super) const KEYED: u8 = b'k';
pub(super) const TIMER: u8 = b't';
pub(super) const BROADCAST: u8 = b'b';
pub(super) const META: u8 = b'm';
pub(super) const REDO: u8 = b'w';

const META_STATE: &[u8] = b"state/";
const META_VERSION: u8 = 1;

/// LEB128: 7 bits a byte, high bit set on all but the last byte. Prefix-free.
pub(super) fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Option<usize> {
    let mut n: usize = 0;
    for shift in (0..usize::BITS).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        n |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

fn read_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = read_varint(buf, pos)?;
    let bytes = buf.get(*pos..pos.checked_add(len)?)?;
    *pos += len;
    Some(bytes)
}

/// Takes a length-prefixed byte string off the front of `buf`.
pub(super) fn take_bytes<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let mut pos = 0;
    let bytes = read_bytes(buf, &mut pos)?;
    *buf = &buf[pos..];
    Some(bytes)
}

fn read_u16(buf: &[u8], pos: &mut usize) -> Option<u16> {
    let bytes = buf.get(*pos..*pos + 2)?;
    *pos += 2;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

/// `i64` as 8 bytes whose unsigned order is the signed order (flip the sign bit).
pub(super) fn encode_time(at_ms: i64) -> [u8; 8] {
    ((at_ms as u64) ^ (1 << 63)).to_be_bytes()
}

fn decode_time(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// The smallest key after every key that starts with `prefix`; `None` when there is none
/// (the prefix is all `0xff`).
pub(super) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

// --- keyed state --------------------------------------------------------------------------

/// Appends `k | kg | len key | len namespace`: the part of a keyed entry shared by every
/// state of one key (and namespace).
pub(super) fn push_keyed_prefix(out: &mut Vec<u8>, key_group: u16, key: &[u8], namespace: &[u8]) {
    out.push(KEYED);
    out.extend_from_slice(&key_group.to_be_bytes());
    put_varint(out, key.len());
    out.extend_from_slice(key);
    put_varint(out, namespace.len());
    out.extend_from_slice(namespace);
}

pub(super) fn push_state_id(out: &mut Vec<u8>, state_id: u16) {
    out.extend_from_slice(&state_id.to_be_bytes());
}

pub(super) fn push_seq(out: &mut Vec<u8>, seq: u64) {
    out.extend_from_slice(&seq.to_be_bytes());
}

/// The list sequence number at the end of a list entry's key.
pub(super) fn decode_seq(entry_key: &[u8]) -> Option<u64> {
    let tail = entry_key.get(entry_key.len().checked_sub(8)?..)?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}

/// The start of key group `key_group`'s keyed entries (`k | kg`).
pub(super) fn keyed_group_start(key_group: u16) -> Vec<u8> {
    let mut out = vec![KEYED];
    out.extend_from_slice(&key_group.to_be_bytes());
    out
}

/// The end (exclusive) of the keyed entries of key groups below `end` (exclusive).
pub(super) fn keyed_groups_end(end: u16) -> Vec<u8> {
    // `end` is at most u16::MAX, so `k | end` bounds every group below it.
    keyed_group_start(end)
}

/// A keyed entry's key, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyedEntry<'a> {
    pub key_group: u16,
    pub key: &'a [u8],
    pub namespace: &'a [u8],
    pub state_id: u16,
    pub suffix: &'a [u8],
}

pub(super) fn decode_keyed(entry: &[u8]) -> Option<KeyedEntry<'_>> {
    if entry.first() != Some(&KEYED) {
        return None;
    }
    let mut pos = 1;
    let key_group = read_u16(entry, &mut pos)?;
    let key = read_bytes(entry, &mut pos)?;
    let namespace = read_bytes(entry, &mut pos)?;
    let state_id = read_u16(entry, &mut pos)?;
    Some(KeyedEntry { key_group, key, namespace, state_id, suffix: &entry[pos..] })
}

// --- timers -------------------------------------------------------------------------------

/// `t | domain | kg`: the timers of one key group in one domain, in time order.
pub(super) fn timer_group_prefix(domain: TimeDomain, key_group: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 8 + 16);
    out.push(TIMER);
    out.push(domain.code());
    out.extend_from_slice(&key_group.to_be_bytes());
    out
}

pub(super) fn timer_key(domain: TimeDomain, key_group: u16, at_ms: i64, key: &[u8], namespace: &[u8]) -> Vec<u8> {
    let mut out = timer_group_prefix(domain, key_group);
    out.extend_from_slice(&encode_time(at_ms));
    put_varint(&mut out, key.len());
    out.extend_from_slice(key);
    put_varint(&mut out, namespace.len());
    out.extend_from_slice(namespace);
    out
}

/// The end (exclusive) of the timers of `domain` and `key_group` at or before `up_to`.
pub(super) fn timer_due_end(domain: TimeDomain, key_group: u16, up_to: i64) -> Option<Vec<u8>> {
    let mut bound = timer_group_prefix(domain, key_group);
    bound.extend_from_slice(&encode_time(up_to));
    prefix_end(&bound)
}

/// A timer entry's key, split: `(key group, time, key, namespace)`.
pub(super) fn decode_timer(entry: &[u8]) -> Option<(u16, i64, &[u8], &[u8])> {
    if entry.first() != Some(&TIMER) {
        return None;
    }
    let mut pos = 2;
    let key_group = read_u16(entry, &mut pos)?;
    let time = entry.get(pos..pos + 8)?;
    pos += 8;
    let at_ms = decode_time(time.try_into().ok()?);
    let key = read_bytes(entry, &mut pos)?;
    let namespace = read_bytes(entry, &mut pos)?;
    (pos == entry.len()).then_some((key_group, at_ms, key, namespace))
}

// --- broadcast state ----------------------------------------------------------------------

/// `b | instance`: every broadcast entry of one parallel instance.
pub(super) fn broadcast_instance_prefix(instance: u16) -> Vec<u8> {
    let mut out = vec![BROADCAST];
    out.extend_from_slice(&instance.to_be_bytes());
    out
}

/// `b | instance | state id`: the entries of one broadcast state of one instance.
pub(super) fn broadcast_state_prefix(instance: u16, state_id: u16) -> Vec<u8> {
    let mut out = broadcast_instance_prefix(instance);
    push_state_id(&mut out, state_id);
    out
}

/// The instance of a broadcast entry.
pub(super) fn decode_broadcast_instance(entry: &[u8]) -> Option<u16> {
    if entry.first() != Some(&BROADCAST) {
        return None;
    }
    read_u16(entry, &mut 1)
}

// --- redo records -------------------------------------------------------------------------

/// The redo record of a flush in progress of one instance (named by its first key group).
pub(super) fn redo_key(instance: u16) -> Vec<u8> {
    let mut out = vec![REDO];
    out.extend_from_slice(&instance.to_be_bytes());
    out
}

/// The redo record of checkpoint `id` of one instance: its writes of that epoch, applied
/// once the checkpoint (and the next) completed, dropped if it never did (see `flush.rs`).
pub(super) fn checkpoint_redo_key(instance: u16, id: u64) -> Vec<u8> {
    let mut out = redo_key(instance);
    out.extend_from_slice(&id.to_be_bytes());
    out
}

/// The checkpoint of a redo record's key; `None` for a plain flush's record.
pub(super) fn redo_checkpoint(key: &[u8]) -> Option<u64> {
    key.get(3..11).map(|id| u64::from_be_bytes(id.try_into().expect("8 bytes")))
}

// --- metadata -----------------------------------------------------------------------------

pub(super) fn meta_states_prefix() -> Vec<u8> {
    let mut out = vec![META];
    out.extend_from_slice(META_STATE);
    out
}

pub(super) fn meta_state_key(name: &str) -> Vec<u8> {
    let mut out = meta_states_prefix();
    out.extend_from_slice(name.as_bytes());
    out
}

pub(super) fn encode_meta_state(kind_code: u8, state_id: u16) -> Vec<u8> {
    let id = state_id.to_be_bytes();
    vec![META_VERSION, kind_code, id[0], id[1]]
}

/// `(name, kind code, state id)` of a metadata entry.
pub(super) fn decode_meta_state<'a>(key: &'a [u8], value: &[u8]) -> Option<(&'a str, u8, u16)> {
    let name = std::str::from_utf8(key.strip_prefix(&[META])?.strip_prefix(META_STATE)?).ok()?;
    match value {
        [META_VERSION, kind, a, b] => Some((name, *kind, u16::from_be_bytes([*a, *b]))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(key_group: u16, key: &[u8], namespace: &[u8], state_id: u16, suffix: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_keyed_prefix(&mut out, key_group, key, namespace);
        push_state_id(&mut out, state_id);
        out.extend_from_slice(suffix);
        out
    }

    #[test]
    fn varint_round_trips_at_the_byte_boundaries() {
        for n in [0, 1, 127, 128, 255, 16_383, 16_384, usize::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            let mut pos = 0;
            assert_eq!(read_varint(&out, &mut pos), Some(n));
            assert_eq!(pos, out.len());
        }
    }

    #[test]
    fn a_key_that_prefixes_another_does_not_prefix_its_entries() {
        // "ab" with namespace "" against "a" with namespace "b", and "a" against "ab".
        let a = entry(3, b"a", b"", 1, b"");
        let ab = entry(3, b"ab", b"", 1, b"");
        let a_ns_b = entry(3, b"a", b"b", 1, b"");
        assert!(!ab.starts_with(&a));
        assert!(!a_ns_b.starts_with(&a));
        assert_ne!(ab, a_ns_b);
    }

    #[test]
    fn time_encoding_keeps_the_order_of_negative_and_positive_times() {
        let times = [i64::MIN, -1_000, -1, 0, 1, 1_000, i64::MAX];
        for pair in times.windows(2) {
            assert!(encode_time(pair[0]) < encode_time(pair[1]), "{pair:?}");
        }
        for t in times {
            assert_eq!(decode_time(encode_time(t)), t);
        }
    }

    #[test]
    fn prefix_end_skips_trailing_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
    }

    #[test]
    fn metadata_round_trips() {
        let key = meta_state_key("seen");
        let value = encode_meta_state(3, 42);
        assert_eq!(decode_meta_state(&key, &value), Some(("seen", 3, 42)));
        assert_eq!(decode_meta_state(&key, &[9, 3, 0, 1]), None);
    }

    proptest! {
        #[test]
        fn keyed_entries_decode_to_what_was_encoded(
            key_group in any::<u16>(),
            key in proptest::collection::vec(any::<u8>(), 0..300),
            namespace in proptest::collection::vec(any::<u8>(), 0..20),
            state_id in any::<u16>(),
            suffix in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let bytes = entry(key_group, &key, &namespace, state_id, &suffix);
            let decoded = decode_keyed(&bytes).expect("decodes");
            prop_assert_eq!(
                decoded,
                KeyedEntry { key_group, key: &key, namespace: &namespace, state_id, suffix: &suffix }
            );
        }

        /// The state prefix of one (key group, key, namespace, state) prefixes an entry only
        /// when the entry belongs to that same (key group, key, namespace, state).
        #[test]
        fn state_prefixes_only_cover_their_own_entries(
            a in (0u16..3, proptest::collection::vec(0u8..3, 0..4), proptest::collection::vec(0u8..3, 0..3), 0u16..3),
            b in (0u16..3, proptest::collection::vec(0u8..3, 0..4), proptest::collection::vec(0u8..3, 0..3), 0u16..3),
            suffix in proptest::collection::vec(0u8..3, 0..4),
        ) {
            let prefix = entry(a.0, &a.1, &a.2, a.3, b"");
            let other = entry(b.0, &b.1, &b.2, b.3, &suffix);
            prop_assert_eq!(other.starts_with(&prefix), a == b);
        }

        #[test]
        fn timers_sort_by_time_within_a_key_group(
            key_group in any::<u16>(),
            t1 in any::<i64>(), t2 in any::<i64>(),
            k1 in proptest::collection::vec(any::<u8>(), 0..8),
            k2 in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let e1 = timer_key(TimeDomain::EventTime, key_group, t1, &k1, b"");
            let e2 = timer_key(TimeDomain::EventTime, key_group, t2, &k2, b"w");
            if t1 < t2 {
                prop_assert!(e1 < e2);
            }
            prop_assert_eq!(decode_timer(&e1), Some((key_group, t1, k1.as_slice(), &b""[..])));
            prop_assert_eq!(decode_timer(&e2), Some((key_group, t2, k2.as_slice(), &b"w"[..])));
            let due = timer_due_end(TimeDomain::EventTime, key_group, t1).expect("bounded");
            prop_assert!(e1 < due);
            prop_assert_eq!(e2 < due, t2 <= t1);
            prop_assert!(e1.starts_with(&timer_group_prefix(TimeDomain::EventTime, key_group)));
        }
    }
}
