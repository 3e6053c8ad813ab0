//! Weir test plugin `versioned`, version 2.0.0: the next version of `versioned-v1-rust`,
//! with another output format, for the hot-deploy tests and benchmark.
//!
//! - `tag` (map): `{"seq": n, ...}` -> `{"seq": n, "version": 2}`; an input field `t` (u64,
//!   the hot-swap bench's timestamp) is carried into the output as it is.
//! - `count` (process): the same value state `count: u64` as version 1 (so a deploy keeps
//!   the counts); emits `{"key", "count", "v": 2}`.

#[path = "../../versioned-v1-rust/src/shared.rs"]
mod shared;

use serde::{Deserialize, Serialize};
pub use shared::{Count, Counted, Seq};

/// The `v` of `count`'s output.
pub const VERSION: u32 = 2;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct TaggedV2 {
    pub seq: u64,
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<u64>,
}

/// Marks a record as handled by version 2.
#[weir::map]
pub fn tag(record: Seq) -> TaggedV2 {
    TaggedV2 { seq: record.seq, version: 2, t: record.t }
}

weir::plugin! {
    name: "versioned",
    version: "2.0.0",
    functions: [tag],
    processes: [count: Count],
}
