//! Where a source stands in its input, as a checkpoint records it.
//!
//! The checkpoint format does not know the connectors: a [`SourcePosition`] is a
//! MessagePack value that the source wrote and only the source reads back (Flink's
//! `SourceSplit` state serialized by the split's own serializer). A connector keeps its
//! position type beside its code, encodes it with [`SourcePosition::encode`] and decodes
//! it with [`SourcePosition::decode`]; the coordinator and `weir checkpoints` only store and
//! show it.
//!
//! Positions written before this was opaque were a Rust enum (`Records(n)`, `File {..}`,
//! `Unreplayable`, `Kafka {..}`) in the same MessagePack form, so each connector's type keeps
//! its variant name and old checkpoints still restore.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A source's position after the last record before a barrier: where it resumes.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcePosition(rmpv::Value);

/// The positions sources share: a record index, or none (a source that cannot rewind).
#[derive(Serialize, Deserialize)]
enum Common {
    /// Records emitted (collection elements, datagen rows): resume at this index.
    Records(u64),
    /// A source that cannot rewind (a socket): it resumes wherever its input is.
    Unreplayable,
}

impl SourcePosition {
    /// A connector's own position value.
    pub fn encode<T: Serialize>(position: &T) -> Self {
        // Encoding a plain serde value into memory fails only for types serde cannot
        // express in MessagePack, which no position type is.
        let bytes = rmp_serde::to_vec_named(position).unwrap_or_default();
        Self(rmpv::decode::read_value(&mut bytes.as_slice()).unwrap_or(rmpv::Value::Nil))
    }

    /// The connector's position value, or why this is not one of its positions (the job's
    /// source was changed since the checkpoint).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, String> {
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &self.0).map_err(|e| e.to_string())?;
        rmp_serde::from_slice(&bytes).map_err(|e| e.to_string())
    }

    /// The `n`th record of a source that counts records (collection, datagen, nexmark).
    pub fn records(n: u64) -> Self {
        Self::encode(&Common::Records(n))
    }

    /// The record index of a position made by [`Self::records`].
    pub fn as_records(&self) -> Option<u64> {
        match self.decode() {
            Ok(Common::Records(n)) => Some(n),
            _ => None,
        }
    }

    /// The position of a source that cannot rewind.
    pub fn unreplayable() -> Self {
        Self::encode(&Common::Unreplayable)
    }

    /// Human-readable, for logs and `weir checkpoints`: the value as JSON.
    pub fn describe(&self) -> String {
        let mut bytes = Vec::new();
        match rmpv::encode::write_value(&mut bytes, &self.0) {
            Ok(()) => crate::record::json_of(&bytes).to_string(),
            Err(e) => format!("unreadable position ({e})"),
        }
    }
}

impl Serialize for SourcePosition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SourcePosition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        rmpv::Value::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The enum positions were before they became opaque, as old checkpoint files hold them.
    #[derive(Serialize)]
    enum Legacy {
        Records(u64),
        File { file: String, offset: u64, line: u64 },
        Unreplayable,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    enum FilePosition {
        File { file: String, offset: u64, line: u64 },
    }

    fn through_a_file(old: &Legacy) -> SourcePosition {
        let bytes = rmp_serde::to_vec_named(&vec![old]).unwrap();
        let mut read: Vec<SourcePosition> = rmp_serde::from_slice(&bytes).unwrap();
        let position = read.remove(0);
        // Written again, it is the same bytes: a checkpoint's format does not change.
        assert_eq!(rmp_serde::to_vec_named(&vec![&position]).unwrap(), bytes);
        position
    }

    #[test]
    fn positions_of_old_checkpoints_decode_in_their_connectors() {
        assert_eq!(through_a_file(&Legacy::Records(7)).as_records(), Some(7));
        assert_eq!(through_a_file(&Legacy::Unreplayable), SourcePosition::unreplayable());
        let file = through_a_file(&Legacy::File { file: "a.log".into(), offset: 10, line: 2 });
        assert_eq!(file.decode(), Ok(FilePosition::File { file: "a.log".into(), offset: 10, line: 2 }));
        assert_eq!(file.as_records(), None);
        assert!(file.describe().contains("a.log"), "{}", file.describe());
    }
}
