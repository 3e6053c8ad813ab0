//! The Nexmark events and their record layout: a flat MessagePack map per event, with an
//! `event_type` and the fields of its kind, `date_time` (epoch ms) in all three.

/// A person registers (Nexmark's `Person`).
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// A person puts an item up for auction (Nexmark's `Auction`); prices in cents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auction {
    pub id: u64,
    pub item_name: String,
    pub description: String,
    pub initial_bid: u64,
    pub reserve: u64,
    pub date_time: i64,
    /// When bidding closes (epoch ms).
    pub expires: i64,
    pub seller: u64,
    pub category: u64,
    pub extra: String,
}

/// A person bids on an auction (Nexmark's `Bid`); the price in cents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bid {
    pub auction: u64,
    pub bidder: u64,
    pub price: u64,
    pub channel: String,
    pub url: String,
    pub date_time: i64,
    pub extra: String,
}

/// One Nexmark event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Person(Person),
    Auction(Auction),
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

    /// Append the event as a flat MessagePack map: `event_type` first, then the fields of
    /// its kind in the order of the structs above.
    pub fn write(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        let str_field = |out: &mut Vec<u8>, k: &str, v: &str| {
            let _ = rmp::encode::write_str(out, k);
            let _ = rmp::encode::write_str(out, v);
        };
        let uint_field = |out: &mut Vec<u8>, k: &str, v: u64| {
            let _ = rmp::encode::write_str(out, k);
            let _ = rmp::encode::write_uint(out, v);
        };
        let int_field = |out: &mut Vec<u8>, k: &str, v: i64| {
            let _ = rmp::encode::write_str(out, k);
            let _ = rmp::encode::write_sint(out, v);
        };
        match self {
            Event::Person(p) => {
                let _ = rmp::encode::write_map_len(out, 9);
                str_field(out, "event_type", "person");
                uint_field(out, "id", p.id);
                str_field(out, "name", &p.name);
                str_field(out, "email_address", &p.email_address);
                str_field(out, "credit_card", &p.credit_card);
                str_field(out, "city", &p.city);
                str_field(out, "state", &p.state);
                int_field(out, "date_time", p.date_time);
                str_field(out, "extra", &p.extra);
            }
            Event::Auction(a) => {
                let _ = rmp::encode::write_map_len(out, 11);
                str_field(out, "event_type", "auction");
                uint_field(out, "id", a.id);
                str_field(out, "item_name", &a.item_name);
                str_field(out, "description", &a.description);
                uint_field(out, "initial_bid", a.initial_bid);
                uint_field(out, "reserve", a.reserve);
                int_field(out, "date_time", a.date_time);
                int_field(out, "expires", a.expires);
                uint_field(out, "seller", a.seller);
                uint_field(out, "category", a.category);
                str_field(out, "extra", &a.extra);
            }
            Event::Bid(b) => {
                let _ = rmp::encode::write_map_len(out, 8);
                str_field(out, "event_type", "bid");
                uint_field(out, "auction", b.auction);
                uint_field(out, "bidder", b.bidder);
                uint_field(out, "price", b.price);
                str_field(out, "channel", &b.channel);
                str_field(out, "url", &b.url);
                int_field(out, "date_time", b.date_time);
                str_field(out, "extra", &b.extra);
            }
        }
    }
}
