//! The record layout of the Nexmark events ([`weir_nexmark`] defines them): a flat
//! MessagePack map per event, with an `event_type` and the fields of its kind, `date_time`
//! (epoch ms) in all three.
//!
//! [`write`] is the source's hot path, so it writes the map with `rmp` directly; the bytes
//! are serde's encoding of the shared [`Event`] as a map (`rmp_serde::to_vec_named`), which
//! is what plugins and the bench decode: a test below holds the two together.

use weir_nexmark::Event;

/// Append `event` as a flat MessagePack map: `event_type` first, then the fields of its kind
/// in the order of the structs of [`weir_nexmark`].
pub fn write(event: &Event, out: &mut Vec<u8>) {
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
    match event {
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

#[cfg(test)]
mod tests {
    use weir_nexmark::{Auction, Bid, Person};

    use super::*;
    use crate::connectors::nexmark::{NexmarkGenerator, NexmarkSpec};

    fn written(event: &Event) -> Vec<u8> {
        let mut out = Vec::new();
        write(event, &mut out);
        out
    }

    fn serde_encoded(event: &Event) -> Vec<u8> {
        rmp_serde::to_vec_named(event).expect("an event encodes")
    }

    #[test]
    fn the_writer_writes_the_serde_encoding_of_the_shared_events() {
        let spec = NexmarkSpec::new(10_000).seed(7);
        let g = NexmarkGenerator::new(&spec).expect("a valid spec");
        let mut kinds = std::collections::BTreeSet::new();
        for i in 0..spec.events {
            let event = g.event(i);
            kinds.insert(event.event_type());
            assert_eq!(written(&event), serde_encoded(&event), "event {i}: {event:?}");
        }
        assert_eq!(kinds.len(), 3, "people, auctions and bids");
    }

    #[test]
    fn the_writer_matches_serde_at_the_edges_of_the_encoding() {
        // Integers of every MessagePack width and sign, strings of every length class.
        let long = "x".repeat(70_000);
        let events = [
            Event::Person(Person {
                id: u64::MAX,
                name: String::new(),
                email_address: "a".repeat(31),
                credit_card: "b".repeat(32),
                city: "c".repeat(255),
                state: "d".repeat(256),
                date_time: i64::MIN,
                extra: long.clone(),
            }),
            Event::Auction(Auction {
                id: 0,
                item_name: "é".into(),
                description: String::new(),
                initial_bid: 127,
                reserve: 128,
                date_time: -1,
                expires: -33,
                seller: 65_536,
                category: u64::from(u32::MAX) + 1,
                extra: String::new(),
            }),
            Event::Bid(Bid {
                auction: 255,
                bidder: 256,
                price: 65_535,
                channel: String::new(),
                url: long,
                date_time: i64::MAX,
                extra: "y".repeat(65_536),
            }),
            Event::Bid(Bid {
                auction: 1,
                bidder: 2,
                price: 3,
                channel: "Google".into(),
                url: String::new(),
                date_time: -129,
                extra: String::new(),
            }),
            Event::Bid(Bid {
                auction: 1,
                bidder: 2,
                price: 3,
                channel: String::new(),
                url: String::new(),
                date_time: -32_769,
                extra: String::new(),
            }),
            Event::Bid(Bid {
                auction: 1,
                bidder: 2,
                price: 3,
                channel: String::new(),
                url: String::new(),
                date_time: i64::from(i32::MIN) - 1,
                extra: String::new(),
            }),
        ];
        for event in &events {
            assert_eq!(written(event), serde_encoded(event), "{}", event.event_type());
            let back: Event = rmp_serde::from_slice(&written(event)).expect("the record decodes");
            assert_eq!(&back, event);
        }
    }
}
