//! q0 (pass-through), q1 (currency conversion), q2 (selection), and the filters and key
//! selectors the stateful queries start with.

use serde::{Deserialize, Serialize};

use crate::model::{Event, Kind, PersonOrAuction, window_start};

/// q1's dollar-to-euro rate, as in the Flink and RisingWave Nexmark queries.
pub const EUROS_PER_DOLLAR: f64 = 0.908;
/// q2 keeps the bids of auctions whose id is a multiple of this.
pub const Q2_AUCTION_MODULUS: u64 = 123;
/// q7's tumbling window.
pub const Q7_WINDOW_MS: i64 = 10_000;

/// q0: every event decoded into its typed form and encoded again (Beam's Query0, which
/// round-trips each event through its coder): the cost of the ABI and of (de)serialization.
#[weir::map]
pub fn q0(event: Event) -> Event {
    event
}

/// Keeps bids.
#[weir::filter]
pub fn is_bid(event: &Kind) -> bool {
    event.event_type == "bid"
}

/// A bid as q1 reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct BidPrice {
    pub auction: u64,
    pub bidder: u64,
    pub price: u64,
    pub date_time: i64,
    pub extra: String,
}

/// q1's output: the bid with its price in euros.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EuroBid {
    pub auction: u64,
    pub bidder: u64,
    pub price: f64,
    pub date_time: i64,
    pub extra: String,
}

/// q1: a bid's price in euros (`SELECT auction, bidder, 0.908 * price, date_time, extra FROM bid`).
#[weir::map]
pub fn q1(bid: BidPrice) -> EuroBid {
    EuroBid {
        auction: bid.auction,
        bidder: bid.bidder,
        price: EUROS_PER_DOLLAR * bid.price as f64,
        date_time: bid.date_time,
        extra: bid.extra,
    }
}

/// What q2 reads of any event.
#[derive(Debug, Clone, Deserialize)]
pub struct MaybeBid {
    pub event_type: String,
    #[serde(default)]
    pub auction: Option<u64>,
}

/// q2: the bids of every 123rd auction (`... FROM bid WHERE MOD(auction, 123) = 0`), whole.
#[weir::filter]
pub fn q2(event: &MaybeBid) -> bool {
    event.event_type == "bid" && event.auction.is_some_and(|a| a.is_multiple_of(Q2_AUCTION_MODULUS))
}

/// q3's selection: people from Oregon, Idaho or California, and auctions of category 10.
#[weir::filter]
pub fn q3_filter(event: &PersonOrAuction) -> bool {
    match event.event_type.as_str() {
        "person" => matches!(event.state.as_deref(), Some("OR" | "ID" | "CA")),
        "auction" => event.category == Some(10),
        _ => false,
    }
}

/// Keeps people and auctions (q8).
#[weir::filter]
pub fn person_or_auction(event: &Kind) -> bool {
    matches!(event.event_type.as_str(), "person" | "auction")
}

/// Keys a person by its id and an auction by its seller, so the two meet (q3, q8).
#[weir::key_selector]
pub fn person_or_seller(event: PersonOrAuction) -> Result<u64, String> {
    match (event.event_type.as_str(), event.id, event.seller) {
        ("person", Some(id), _) => Ok(id),
        ("auction", _, Some(seller)) => Ok(seller),
        (other, ..) => Err(format!("person_or_seller keys people (by id) and auctions (by seller), not a {other}")),
    }
}

/// The time of a bid.
#[derive(Debug, Clone, Deserialize)]
pub struct Timed {
    pub date_time: i64,
}

/// Keys a bid by the start of its 10 s tumbling window (q7).
#[weir::key_selector]
pub fn q7_window(bid: Timed) -> i64 {
    window_start(bid.date_time, Q7_WINDOW_MS)
}
