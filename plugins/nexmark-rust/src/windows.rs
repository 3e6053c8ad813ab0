//! q5 (hot items: the auctions with the most bids in each sliding window) and q7 (highest
//! bid: the bids at the top price of each tumbling window), whose "top of the window" part
//! Weir's built-in window aggregates do not cover (they return one value per key and
//! window, not the records that reach it), so it is a keyed process function that keeps the
//! window's best so far and emits it from an event-time timer at the window's end.

use serde::{Deserialize, Serialize};
use weir::process::{Collector, Context, KeyedProcessFunction, NoBroadcast, ProcessResult, StateDecl};

use crate::stateless::Q7_WINDOW_MS;

/// One auction's bid count in one window: the output of the built-in `window ... count`
/// keyed by auction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuctionCount {
    pub key: u64,
    pub window_start: i64,
    pub window_end: i64,
    pub count: u64,
}

/// The auctions with the most bids of a window so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotAuctions {
    pub window_start: i64,
    pub count: u64,
    pub auctions: Vec<u64>,
}

/// q5's output: an auction with the most bids of a window (ties: one record each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotItem {
    pub auction: u64,
    pub num: u64,
    pub window_start: i64,
    pub window_end: i64,
}

/// q5, second half: keyed by `window_end`, fed each auction's count in that window; emits
/// the auctions with the largest count when the watermark passes the window's end.
#[derive(Debug, Default)]
pub struct Q5HotItems;

impl KeyedProcessFunction for Q5HotItems {
    type Input = AuctionCount;
    type Output = HotItem;
    type Broadcast = NoBroadcast;
    const STATES: &'static [StateDecl] = &[StateDecl::value::<HotAuctions>("best")];

    fn process_element(&mut self, c: AuctionCount, ctx: &Context<'_>, _: &mut Collector<'_, HotItem>) -> ProcessResult {
        let best = ctx.value::<HotAuctions>("best")?;
        let next = match best.get()? {
            None => {
                ctx.timer_service().register_event_time_timer(c.window_end - 1);
                HotAuctions { window_start: c.window_start, count: c.count, auctions: vec![c.key] }
            }
            Some(b) if c.count > b.count => HotAuctions { count: c.count, auctions: vec![c.key], ..b },
            Some(mut b) if c.count == b.count => {
                b.auctions.push(c.key);
                b
            }
            Some(_) => return Ok(()),
        };
        best.set(&next)?;
        Ok(())
    }

    fn on_timer(&mut self, at: i64, ctx: &Context<'_>, out: &mut Collector<'_, HotItem>) -> ProcessResult {
        let best = ctx.value::<HotAuctions>("best")?;
        if let Some(mut b) = best.get()? {
            b.auctions.sort_unstable();
            for auction in b.auctions {
                out.collect(HotItem { auction, num: b.count, window_start: b.window_start, window_end: at + 1 });
            }
            best.clear()?;
        }
        Ok(())
    }
}

/// What q7 keeps of a bid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopBid {
    pub auction: u64,
    pub bidder: u64,
    pub price: u64,
    pub date_time: i64,
}

/// q7's output: a bid at the highest price of its 10 s window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HighestBid {
    pub auction: u64,
    pub bidder: u64,
    pub price: u64,
    pub date_time: i64,
    pub window_start: i64,
    pub window_end: i64,
}

/// q7: keyed by window start ([`crate::q7_window`]), fed the window's bids; keeps the bids
/// at the top price so far and emits them (in arrival order) when the watermark passes the
/// window's end. Needs event time.
#[derive(Debug, Default)]
pub struct Q7HighestBid;

impl KeyedProcessFunction for Q7HighestBid {
    type Input = TopBid;
    type Output = HighestBid;
    type Broadcast = NoBroadcast;
    const STATES: &'static [StateDecl] = &[StateDecl::value::<Vec<TopBid>>("best")];

    fn process_element(&mut self, bid: TopBid, ctx: &Context<'_>, _: &mut Collector<'_, HighestBid>) -> ProcessResult {
        let best = ctx.value::<Vec<TopBid>>("best")?;
        let mut top = match best.get()? {
            Some(top) => top,
            None => {
                let start: i64 = ctx.current_key()?;
                ctx.timer_service().register_event_time_timer(start + Q7_WINDOW_MS - 1);
                Vec::new()
            }
        };
        match top.first().map(|b| b.price) {
            Some(price) if bid.price < price => return Ok(()),
            Some(price) if bid.price > price => top.clear(),
            _ => {}
        }
        top.push(bid);
        best.set(&top)?;
        Ok(())
    }

    fn on_timer(&mut self, at: i64, ctx: &Context<'_>, out: &mut Collector<'_, HighestBid>) -> ProcessResult {
        let best = ctx.value::<Vec<TopBid>>("best")?;
        let window_end = at + 1;
        for b in best.get()?.unwrap_or_default() {
            let (auction, bidder, price, date_time) = (b.auction, b.bidder, b.price, b.date_time);
            out.collect(HighestBid {
                auction,
                bidder,
                price,
                date_time,
                window_start: window_end - Q7_WINDOW_MS,
                window_end,
            });
        }
        best.clear()?;
        Ok(())
    }
}
