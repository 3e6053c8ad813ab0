//! Weir benchmark plugin `nexmark`: the user logic of the Nexmark queries
//! (`benches/nexmark/q*.yaml`) over the `nexmark` source's events (flat maps with an
//! `event_type`; see [`model`]).
//!
//! | function | kind | query | what it does |
//! |---|---|---|---|
//! | `q0` | map | q0 | decodes an event into its typed form and encodes it again |
//! | `is_bid` | filter | q1, q5, q7 | keeps bids |
//! | `q1` | map | q1 | a bid's price in euros |
//! | `q2` | filter | q2 | bids of auctions whose id is a multiple of 123 |
//! | `q3_filter` | filter | q3 | people from OR, ID, CA; auctions of category 10 |
//! | `person_or_auction` | filter | q8 | people and auctions |
//! | `person_or_seller` | key selector | q3, q8 | a person's id, an auction's seller |
//! | `q3_join` | process | q3 | joins auctions to their seller |
//! | `q3_person`, `q3_auction` | filter | q3-join | people from OR, ID, CA; auctions of category 10 |
//! | `q3_item` | map | q3-join | the host join's `{persons, auctions}` pair as q3's output |
//! | `q5_hot_items` | process | q5 | the auctions with the most bids per window |
//! | `q7_window` | key selector | q7 | a bid's 10 s window start |
//! | `q7_highest_bid` | process | q7 | the top-price bids per window |
//! | `q8_new_users` | process | q8 | people who opened an auction in the 10 s window they registered in |
//! | `auction_or_bid` | filter | q4, q6 | auctions and bids |
//! | `auction_id` | key selector | q4, q6 | an auction's id, a bid's auction |
//! | `closed_auctions` | process | q4, q6 | an auction's winning price when it expires |
//! | `q4_average` | process | q4 | average closing price per category |
//! | `q6_average` | process | q6 | average closing price of a seller's last 10 auctions |

mod auctions;
mod joins;
pub mod model;
mod stateless;
mod windows;

pub use auctions::*;
pub use joins::*;
pub use stateless::*;
pub use windows::*;

weir::plugin! {
    name: "nexmark",
    version: "0.1.0",
    functions: [
        q0, is_bid, q1, q2, q3_filter, q3_person, q3_auction, q3_item, person_or_auction, person_or_seller, q7_window,
        auction_or_bid, auction_id,
    ],
    processes: [
        q3_join: Q3Join,
        q5_hot_items: Q5HotItems,
        q7_highest_bid: Q7HighestBid,
        q8_new_users: Q8NewUsers,
        closed_auctions: ClosedAuctions,
        q4_average: Q4Average,
        q6_average: Q6Average,
    ],
}

#[cfg(test)]
mod tests;
