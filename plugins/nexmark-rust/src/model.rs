//! The Nexmark events as the `nexmark` source writes them: flat MessagePack maps with an
//! `event_type` (`person`, `auction` or `bid`) and the fields of that kind.

use serde::{Deserialize, Serialize};

/// A person registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub id: u64,
    pub name: String,
    pub email_address: String,
    pub credit_card: String,
    pub city: String,
    pub state: String,
    pub date_time: i64,
    pub extra: String,
}

/// A person puts an item up for auction (prices in cents).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Auction {
    pub id: u64,
    pub item_name: String,
    pub description: String,
    pub initial_bid: u64,
    pub reserve: u64,
    pub date_time: i64,
    pub expires: i64,
    pub seller: u64,
    pub category: u64,
    pub extra: String,
}

/// A person bids on an auction (the price in cents).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bid {
    pub auction: u64,
    pub bidder: u64,
    pub price: u64,
    pub channel: String,
    pub url: String,
    pub date_time: i64,
    pub extra: String,
}

/// Any event, told apart by its `event_type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", rename_all = "lowercase")]
pub enum Event {
    Person(Person),
    Auction(Auction),
    Bid(Bid),
}

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
