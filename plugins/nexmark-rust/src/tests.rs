//! The process functions' edge cases through the SDK's harness (in-memory state and timers):
//! what the end-to-end test in `tests/nexmark.rs` meets only by chance.

use weir::testing::{Harness, ProcessHarness};

use crate::model::{Auction, Bid, Event, Person};
use crate::*;

fn person(id: u64, state: &str, at: i64) -> Event {
    Event::Person(Person {
        id,
        name: format!("p{id}"),
        email_address: String::new(),
        credit_card: String::new(),
        city: "Boise".into(),
        state: state.into(),
        date_time: at,
        extra: String::new(),
    })
}

fn auction(id: u64, seller: u64, at: i64, expires: i64, reserve: u64) -> Event {
    Event::Auction(Auction {
        id,
        item_name: String::new(),
        description: String::new(),
        initial_bid: 1,
        reserve,
        date_time: at,
        expires,
        seller,
        category: 10,
        extra: String::new(),
    })
}

fn bid(auction: u64, bidder: u64, price: u64, at: i64) -> Event {
    Event::Bid(Bid {
        auction,
        bidder,
        price,
        channel: String::new(),
        url: String::new(),
        date_time: at,
        extra: String::new(),
    })
}

#[test]
fn stateless_functions() {
    let h = Harness::new(&PLUGIN);
    let events = [person(1, "OR", 0), auction(7, 1, 0, 10, 5), bid(246, 1, 100, 3)];
    assert_eq!(h.map::<_, Event>("q0", events.clone()), events);
    assert_eq!(h.filter("is_bid", events.clone()), [false, false, true]);
    assert_eq!(h.filter("q2", events.clone()), [false, false, true]);
    assert_eq!(h.filter("q2", [bid(245, 1, 100, 3)]), [false]);
    assert_eq!(h.filter("q3_filter", [person(1, "WA", 0), person(2, "CA", 0)]), [false, true]);
    let euros = h.map::<_, EuroBid>("q1", [bid(1, 2, 1000, 3)]);
    assert_eq!(euros[0].price, 908.0);
    assert_eq!(h.map::<_, u64>("person_or_seller", [person(4, "OR", 0), auction(7, 9, 0, 1, 1)]), [4, 9]);
    assert_eq!(h.map::<_, i64>("q7_window", [bid(1, 1, 1, 19_999), bid(1, 1, 1, 20_000)]), [10_000, 20_000]);
}

#[test]
fn q3_emits_an_auction_that_came_before_its_seller_when_the_seller_comes() -> Result<(), Box<dyn std::error::Error>> {
    let mut h = ProcessHarness::new(&PLUGIN, "q3_join");
    h.process(1, auction(7, 1, 50, 100, 1), None)?;
    assert!(h.output::<LocalItem>().is_empty());
    h.process(1, person(1, "OR", 40), None)?;
    h.process(1, auction(8, 1, 60, 100, 1), None)?;
    let ids: Vec<(u64, i64)> = h.output::<LocalItem>().iter().map(|i| (i.id, i.date_time)).collect();
    assert_eq!(ids, [(7, 50), (8, 60)]);
    assert!(h.list_state::<Waiting>(1, "waiting").is_empty());
    Ok(())
}

#[test]
fn closing_takes_the_best_valid_bid_including_one_before_its_auction() -> Result<(), Box<dyn std::error::Error>> {
    let mut h = ProcessHarness::new(&PLUGIN, "closed_auctions");
    h.process(7, bid(7, 1, 500, 20), 20)?; // before the auction arrives: kept
    h.process(7, auction(7, 3, 10, 100, 50), 10)?;
    h.process(7, bid(7, 1, 40, 30), 30)?; // below the reserve
    h.process(7, bid(7, 1, 400, 40), 40)?; // lower than the early bid
    h.process(7, bid(7, 1, 9_000, 100), 100)?; // at `expires`: too late
    h.process(7, bid(7, 1, 9_000, 5), 5)?; // before the auction opened
    h.advance_watermark(99)?;
    assert!(h.output::<WinningBid>().is_empty());
    h.advance_watermark(100)?;
    assert_eq!(
        h.take_output::<WinningBid>(),
        [WinningBid { auction: 7, seller: 3, category: 10, price: 500, expires: 100 }]
    );
    // A bid for the closed auction changes nothing, and no state is left but the mark.
    h.process(7, bid(7, 1, 10_000, 99), 99)?;
    h.advance_watermark(1_000)?;
    assert!(h.output::<WinningBid>().is_empty());
    assert_eq!(h.value_state::<OpenAuction>(7, "auction"), None);
    assert_eq!(h.value_state::<bool>(7, "closed"), Some(true));
    Ok(())
}

#[test]
fn an_auction_without_a_valid_bid_closes_silently() -> Result<(), Box<dyn std::error::Error>> {
    let mut h = ProcessHarness::new(&PLUGIN, "closed_auctions");
    h.process(8, auction(8, 3, 10, 100, 50), 10)?;
    h.process(8, bid(8, 1, 49, 20), 20)?;
    h.advance_watermark(200)?;
    assert!(h.output::<WinningBid>().is_empty());
    Ok(())
}

#[test]
fn q6_keeps_the_ten_latest_closings_whatever_their_arrival_order() -> Result<(), Box<dyn std::error::Error>> {
    let mut h = ProcessHarness::new(&PLUGIN, "q6_average");
    // Twelve closings, the two earliest (prices 1000) arriving last.
    for i in (0..12u64).rev() {
        let price = if i < 2 { 1_000 } else { 10 };
        h.process(3, WinningBid { auction: i, seller: 3, category: 10, price, expires: i as i64 }, None)?;
    }
    let last = h.output::<SellerPrice>().pop().ok_or("no output")?;
    assert_eq!((last.avg, last.auctions), (10.0, 10));
    Ok(())
}

#[test]
fn q7_emits_every_bid_at_the_top_price_at_the_windows_end() -> Result<(), Box<dyn std::error::Error>> {
    let mut h = ProcessHarness::new(&PLUGIN, "q7_highest_bid");
    let top = |auction, price, at| TopBid { auction, bidder: 1, price, date_time: at };
    h.process(10_000i64, top(1, 50, 10_001), 10_001)?;
    h.process(10_000i64, top(2, 90, 10_002), 10_002)?;
    h.process(10_000i64, top(3, 70, 10_003), 10_003)?;
    h.process(10_000i64, top(4, 90, 19_999), 19_999)?;
    h.advance_watermark(19_998)?;
    assert!(h.output::<HighestBid>().is_empty());
    h.advance_watermark(19_999)?;
    let got: Vec<(u64, u64, i64)> =
        h.output::<HighestBid>().iter().map(|b| (b.auction, b.price, b.window_end)).collect();
    assert_eq!(got, [(2, 90, 20_000), (4, 90, 20_000)]);
    Ok(())
}

#[test]
fn q8_needs_the_person_and_an_auction_in_the_same_window() -> Result<(), Box<dyn std::error::Error>> {
    let mut h = ProcessHarness::new(&PLUGIN, "q8_new_users");
    h.process(1, auction(7, 1, 9_000, 20_000, 1), 9_000)?; // window 0
    h.process(1, person(1, "OR", 10_500), 10_500)?; // window 10 s
    h.process(2, person(2, "OR", 11_000), 11_000)?;
    h.process(2, auction(8, 2, 19_999, 30_000, 1), 19_999)?;
    h.advance_watermark(40_000)?;
    let got: Vec<(u64, i64)> = h.output::<NewUser>().iter().map(|u| (u.id, u.window_start)).collect();
    assert_eq!(got, [(2, 10_000)]);
    assert!(h.map_state::<i64, NewUserWindow>(1, "windows").is_empty());
    Ok(())
}

#[test]
fn q5_emits_the_auctions_with_the_top_count_of_a_window() -> Result<(), Box<dyn std::error::Error>> {
    let mut h = ProcessHarness::new(&PLUGIN, "q5_hot_items");
    let count = |key, count| AuctionCount { key, window_start: 0, window_end: 10_000, count };
    for (key, n) in [(5, 3), (6, 9), (7, 1), (8, 9)] {
        h.process(10_000i64, count(key, n), 9_999)?;
    }
    h.advance_watermark(9_999)?;
    let got: Vec<(u64, u64)> = h.output::<HotItem>().iter().map(|i| (i.auction, i.num)).collect();
    assert_eq!(got, [(6, 9), (8, 9)]);
    Ok(())
}
