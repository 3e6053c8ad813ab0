//! q4 (average closing price per category) and q6 (average closing price of each seller's
//! last 10 auctions), on top of one shared step: closing auctions (Beam's `WinningBids`).
//!
//! Weir has no join operator, so closing is a keyed process function keyed by auction id
//! over auctions and bids: it keeps the auction and its best valid bid, and closes the
//! auction with an event-time timer at its `expires`.

use serde::{Deserialize, Serialize};
use weir::process::{Collector, Context, KeyedProcessFunction, NoBroadcast, ProcessResult, StateDecl};

/// q6 averages each seller's last this many closed auctions.
pub const Q6_LAST_AUCTIONS: usize = 10;

/// What closing reads of auctions and bids.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AuctionOrBid {
    pub event_type: String,
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub auction: Option<u64>,
    #[serde(default)]
    pub seller: Option<u64>,
    #[serde(default)]
    pub category: Option<u64>,
    #[serde(default)]
    pub reserve: Option<u64>,
    #[serde(default)]
    pub expires: Option<i64>,
    #[serde(default)]
    pub price: Option<u64>,
    pub date_time: i64,
}

/// Keeps auctions and bids (q4, q6).
#[weir::filter]
pub fn auction_or_bid(event: &crate::model::Kind) -> bool {
    matches!(event.event_type.as_str(), "auction" | "bid")
}

/// Keys an auction by its id and a bid by its auction.
#[weir::key_selector]
pub fn auction_id(event: AuctionOrBid) -> Result<u64, String> {
    match event.event_type.as_str() {
        "auction" => event.id.ok_or_else(|| "an auction without `id`".to_string()),
        "bid" => event.auction.ok_or_else(|| "a bid without `auction`".to_string()),
        other => Err(format!("auction_id keys auctions and bids, not a {other}")),
    }
}

/// An auction being bid on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAuction {
    pub seller: u64,
    pub category: u64,
    pub reserve: u64,
    pub date_time: i64,
    pub expires: i64,
}

impl OpenAuction {
    /// Beam's rule: a bid counts if it is at least the reserve and made while the auction
    /// was open.
    fn accepts(&self, price: u64, at: i64) -> bool {
        price >= self.reserve && at >= self.date_time && at < self.expires
    }
}

/// A bid, as kept before its auction arrives (bids may name an auction a few ids ahead).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PendingBid {
    pub price: u64,
    pub date_time: i64,
}

/// A closed auction and the price it sold for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WinningBid {
    pub auction: u64,
    pub seller: u64,
    pub category: u64,
    pub price: u64,
    pub expires: i64,
}

/// Closing auctions: keyed by auction id (auctions and bids, [`auction_id`]); emits a
/// [`WinningBid`] when the watermark passes an auction's `expires` if a bid at or above the
/// reserve came while it was open (the highest such price). Needs event time.
#[derive(Debug, Default)]
pub struct ClosedAuctions;

impl KeyedProcessFunction for ClosedAuctions {
    type Input = AuctionOrBid;
    type Output = WinningBid;
    type Broadcast = NoBroadcast;
    const STATES: &'static [StateDecl] = &[
        StateDecl::value::<OpenAuction>("auction"),
        StateDecl::value::<u64>("best"),
        StateDecl::list::<PendingBid>("early"),
        StateDecl::value::<bool>("closed"),
    ];

    fn process_element(
        &mut self,
        e: AuctionOrBid,
        ctx: &Context<'_>,
        _: &mut Collector<'_, WinningBid>,
    ) -> ProcessResult {
        if ctx.value::<bool>("closed")?.get()?.unwrap_or(false) {
            return Ok(()); // a bid too late for its auction
        }
        let auction = ctx.value::<OpenAuction>("auction")?;
        let best = ctx.value::<u64>("best")?;
        let early = ctx.list::<PendingBid>("early")?;
        match e.event_type.as_str() {
            "auction" => {
                let open = OpenAuction {
                    seller: e.seller.ok_or("an auction without `seller`")?,
                    category: e.category.ok_or("an auction without `category`")?,
                    reserve: e.reserve.ok_or("an auction without `reserve`")?,
                    date_time: e.date_time,
                    expires: e.expires.ok_or("an auction without `expires`")?,
                };
                let top =
                    early.get()?.into_iter().filter(|b| open.accepts(b.price, b.date_time)).map(|b| b.price).max();
                if let Some(price) = top {
                    best.set(&price)?;
                }
                early.clear()?;
                ctx.timer_service().register_event_time_timer(open.expires);
                auction.set(&open)?;
            }
            "bid" => {
                let price = e.price.ok_or("a bid without `price`")?;
                match auction.get()? {
                    Some(open) if open.accepts(price, e.date_time) => {
                        if best.get()?.is_none_or(|p| price > p) {
                            best.set(&price)?;
                        }
                    }
                    Some(_) => {}
                    None => early.append(&PendingBid { price, date_time: e.date_time })?,
                }
            }
            other => return Err(format!("closing auctions takes auctions and bids, not a {other}").into()),
        }
        Ok(())
    }

    fn on_timer(&mut self, _at: i64, ctx: &Context<'_>, out: &mut Collector<'_, WinningBid>) -> ProcessResult {
        let auction = ctx.value::<OpenAuction>("auction")?;
        let best = ctx.value::<u64>("best")?;
        if let (Some(open), Some(price)) = (auction.get()?, best.get()?) {
            let (seller, category, expires) = (open.seller, open.category, open.expires);
            out.collect(WinningBid { auction: ctx.current_key()?, seller, category, price, expires });
        }
        auction.clear()?;
        best.clear()?;
        ctx.value::<bool>("closed")?.set(&true)?;
        Ok(())
    }
}

/// A running average over closed auctions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sum {
    pub total: u64,
    pub count: u64,
}

/// q4's output: the average closing price of a category so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryPrice {
    pub category: u64,
    pub avg: f64,
    pub auctions: u64,
}

/// q4, second half: keyed by `category`, fed [`WinningBid`]s; emits the category's average
/// closing price after each (an updating aggregate, as Flink's `GROUP BY category`).
#[derive(Debug, Default)]
pub struct Q4Average;

impl KeyedProcessFunction for Q4Average {
    type Input = WinningBid;
    type Output = CategoryPrice;
    type Broadcast = NoBroadcast;
    const STATES: &'static [StateDecl] = &[StateDecl::value::<Sum>("sum")];

    fn process_element(
        &mut self,
        w: WinningBid,
        ctx: &Context<'_>,
        out: &mut Collector<'_, CategoryPrice>,
    ) -> ProcessResult {
        let sum = ctx.value::<Sum>("sum")?;
        let mut s = sum.get()?.unwrap_or_default();
        s.total += w.price;
        s.count += 1;
        sum.set(&s)?;
        out.collect(CategoryPrice { category: w.category, avg: s.total as f64 / s.count as f64, auctions: s.count });
        Ok(())
    }
}

/// A closed auction as q6 keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sold {
    pub expires: i64,
    pub auction: u64,
    pub price: u64,
}

/// q6's output: the average closing price of a seller's last (by `expires`, then auction
/// id) 10 closed auctions so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SellerPrice {
    pub seller: u64,
    pub avg: f64,
    pub auctions: u64,
}

/// q6, second half: keyed by `seller`, fed [`WinningBid`]s; keeps the seller's latest 10
/// (ordered by close time, so the result does not depend on which closing instance's output
/// came first) and emits their average after each.
#[derive(Debug, Default)]
pub struct Q6Average;

impl KeyedProcessFunction for Q6Average {
    type Input = WinningBid;
    type Output = SellerPrice;
    type Broadcast = NoBroadcast;
    const STATES: &'static [StateDecl] = &[StateDecl::value::<Vec<Sold>>("last")];

    fn process_element(
        &mut self,
        w: WinningBid,
        ctx: &Context<'_>,
        out: &mut Collector<'_, SellerPrice>,
    ) -> ProcessResult {
        let last = ctx.value::<Vec<Sold>>("last")?;
        let mut sold = last.get()?.unwrap_or_default();
        sold.push(Sold { expires: w.expires, auction: w.auction, price: w.price });
        sold.sort_unstable_by_key(|s| (s.expires, s.auction));
        let keep_from = sold.len().saturating_sub(Q6_LAST_AUCTIONS);
        sold.drain(..keep_from);
        last.set(&sold)?;
        let total: u64 = sold.iter().map(|s| s.price).sum();
        out.collect(SellerPrice {
            seller: w.seller,
            avg: total as f64 / sold.len() as f64,
            auctions: sold.len() as u64,
        });
        Ok(())
    }
}
