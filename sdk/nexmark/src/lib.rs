//! The events of the Nexmark benchmark (an online auction: people register, put items up
//! for auction and bid), one definition for every side of Weir that speaks them: the host's
//! `nexmark` source generates them, the `nexmark-rust` plugin decodes them in the queries'
//! user functions, and the Nexmark bench's native variants decode them too.
//!
//! A record is a flat MessagePack map: `event_type` (`person`, `auction` or `bid`) first,
//! then the fields of that kind in the order of the structs below, `date_time` (epoch ms)
//! in all three. That is serde's encoding of [`Event`] as a map (`rmp_serde::to_vec_named`);
//! the host's source writes exactly those bytes.
//!
//! ```
//! use weir_nexmark::{Bid, Event};
//!
//! let bid = Event::Bid(Bid {
//!     auction: 1000,
//!     bidder: 1001,
//!     price: 250,
//!     channel: "Google".into(),
//!     url: "https://www.nexmark.com/item.htm?query=1".into(),
//!     date_time: 1_767_225_600_000,
//!     extra: String::new(),
//! });
//! assert_eq!(bid.event_type(), "bid");
//! assert_eq!(bid.date_time(), 1_767_225_600_000);
//! ```

#![deny(missing_docs)]

use serde::{Deserialize, Serialize};

/// A person registers (Nexmark's `Person`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The person's id.
    pub id: u64,
    /// First and last name.
    pub name: String,
    /// `name@domain`.
    pub email_address: String,
    /// Four groups of four digits.
    pub credit_card: String,
    /// A US city.
    pub city: String,
    /// A US state, two letters.
    pub state: String,
    /// Event time, epoch ms.
    pub date_time: i64,
    /// Padding up to the average person size.
    pub extra: String,
}

/// A person puts an item up for auction (Nexmark's `Auction`); prices in cents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auction {
    /// The auction's id.
    pub id: u64,
    /// What is for sale.
    pub item_name: String,
    /// More about it.
    pub description: String,
    /// The lowest first bid, in cents.
    pub initial_bid: u64,
    /// The lowest price the seller accepts, in cents.
    pub reserve: u64,
    /// Event time, epoch ms.
    pub date_time: i64,
    /// When bidding closes (epoch ms).
    pub expires: i64,
    /// The seller's person id.
    pub seller: u64,
    /// The item's category.
    pub category: u64,
    /// Padding up to the average auction size.
    pub extra: String,
}

/// A person bids on an auction (Nexmark's `Bid`); the price in cents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bid {
    /// The auction's id.
    pub auction: u64,
    /// The bidder's person id.
    pub bidder: u64,
    /// The bid, in cents.
    pub price: u64,
    /// Where the bid came from (`Google`, `Facebook`, ...).
    pub channel: String,
    /// The page the bid was made on.
    pub url: String,
    /// Event time, epoch ms.
    pub date_time: i64,
    /// Padding up to the average bid size.
    pub extra: String,
}

/// Any event, told apart by its `event_type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event_type", rename_all = "lowercase")]
pub enum Event {
    /// `event_type: person`.
    Person(Person),
    /// `event_type: auction`.
    Auction(Auction),
    /// `event_type: bid`.
    Bid(Bid),
}

impl Event {
    /// `person`, `auction` or `bid`: the record's `event_type`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::Person(_) => "person",
            Event::Auction(_) => "auction",
            Event::Bid(_) => "bid",
        }
    }

    /// Event time, epoch ms.
    pub fn date_time(&self) -> i64 {
        match self {
            Event::Person(p) => p.date_time,
            Event::Auction(a) => a.date_time,
            Event::Bid(b) => b.date_time,
        }
    }
}
