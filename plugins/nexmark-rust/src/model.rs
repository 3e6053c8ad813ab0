//! The Nexmark events as the `nexmark` source writes them: flat MessagePack maps with an
//! `event_type` (`person`, `auction` or `bid`) and the fields of that kind. The whole events
//! are the `weir-nexmark` crate's, shared with the host's source; the partial views below
//! decode only what a query reads.

use serde::Deserialize;
pub use weir_nexmark::{Auction, Bid, Event, Person};

/// Just the kind of an event, for filters (other fields are skipped, not decoded).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Kind {
    pub event_type: String,
}

/// The fields the person/auction queries read: a person's `id` or an auction's `seller`,
/// `category` and `id`, and a person's name and place.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PersonOrAuction {
    pub event_type: String,
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub seller: Option<u64>,
    #[serde(default)]
    pub category: Option<u64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub date_time: Option<i64>,
}

/// The start of the tumbling window of `size_ms` that `t` falls in.
pub fn window_start(t: i64, size_ms: i64) -> i64 {
    t - t.rem_euclid(size_ms)
}
