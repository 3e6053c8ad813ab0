//! Weir test plugin `versioned`, version 1.0.0: one version of a plugin that the hot-deploy
//! tests and benchmark swap in and out of running jobs (`versioned-v2-rust` is the next).
//!
//! - `tag` (map): `{"seq": n, ...}` -> `{"seq": n, "v1": true}`; an input field `t` (u64, the
//!   hot-swap bench's timestamp) is carried into the output as it is.
//! - `count` (process): value state `count: u64` per key; emits `{"key", "count", "v": 1}`.

mod shared;

use serde::{Deserialize, Serialize};
pub use shared::{Count, Counted, Seq};

/// The `v` of `count`'s output.
pub const VERSION: u32 = 1;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct TaggedV1 {
    pub seq: u64,
    pub v1: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<u64>,
}

/// Marks a record as handled by version 1.
#[weir::map]
pub fn tag(record: Seq) -> TaggedV1 {
    TaggedV1 { seq: record.seq, v1: true, t: record.t }
}

weir::plugin! {
    name: "versioned",
    version: "1.0.0",
    functions: [tag],
    processes: [count: Count],
}
