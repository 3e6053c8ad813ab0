//! The Nexmark event generator: event `i` of a stream as a pure function of the
//! configuration, the seed and `i`.
//!
//! It follows Apache Beam's `NexmarkGenerator` (the generator Flink's, Arroyo's and
//! RisingWave's Nexmark sources are ports of): the same id arithmetic (`lastBase0PersonId`,
//! `nextBase0AuctionId`, hot sellers, bidders and auctions chosen as the first of the last
//! batch of 100), the same value distributions (prices `round(10^(6u) * 100)` cents, names,
//! cities and states from the same lists, strings of `a-z` and spaces, `extra` padding
//! records to the average sizes), the same auction lengths (on average as long as it takes
//! to generate `num_in_flight_auctions` more auctions) and the same event-time spacing
//! (`base_time + n * 1000 / rate` ms). Where Beam keeps state across events, this one does
//! not, so that a source can resume at any index:
//!
//! - Beam seeds a `java.util.Random` with each event's id; here each event gets its own
//!   xoshiro256++ seeded from `(seed, i)`, so streams differ by seed and never depend on
//!   what was generated before.
//! - Flink's generator caches a random URL per bid channel, the first time it is drawn;
//!   here a channel's URL is derived from the channel number alone.
//! - Beam's unbounded source holds back a share of events (`prob_delayed_event`) for up to
//!   `occasional_delay` of wall-clock time; here the same share of events carry an event
//!   time up to that much earlier than their place in the stream, which is what a consumer
//!   of the held-back events sees (bounded out-of-orderness, never more than the delay).

use std::sync::OnceLock;

use weir_nexmark::{Auction, Bid, Event, Person};

use super::NexmarkSpec;
use crate::connectors::datagen::rng::Rng;

/// Person and auction ids start here, so queries find matches on small streams.
pub const FIRST_PERSON_ID: u64 = 1000;
pub const FIRST_AUCTION_ID: u64 = 1000;
pub const FIRST_CATEGORY_ID: u64 = 10;
/// Auction categories: `FIRST_CATEGORY_ID..FIRST_CATEGORY_ID + NUM_CATEGORIES`.
pub const NUM_CATEGORIES: u64 = 5;
/// Hot sellers, bidders and auctions are the first of each batch of this many.
const HOT_SELLER_RATIO: u64 = 100;
const HOT_BIDDER_RATIO: u64 = 100;
const HOT_AUCTION_RATIO: u64 = 100;
/// Bids and auctions may name people and auctions this far beyond the last generated one.
const PERSON_ID_LEAD: u64 = 10;
const AUCTION_ID_LEAD: u64 = 10;
/// One bid in this many goes to one of the hot channels.
const HOT_CHANNELS_RATIO: u64 = 2;
const CHANNELS_NUMBER: u64 = 10_000;
const MIN_STRING_LENGTH: u64 = 3;

const FIRST_NAMES: [&str; 11] =
    ["Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"];
const LAST_NAMES: [&str; 9] = ["Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"];
const US_CITIES: [&str; 10] =
    ["Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"];
const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// Generates the events of a valid [`NexmarkSpec`], in any order.
///
/// ```
/// use weir::connectors::{NexmarkGenerator, NexmarkSpec};
///
/// let spec = NexmarkSpec::new(1_000).seed(7);
/// let generator = NexmarkGenerator::new(&spec).expect("a valid spec");
/// // Event 0 is the first person; events 1..4 are auctions, 4..50 bids, then again.
/// assert_eq!(generator.event(0).event_type(), "person");
/// assert_eq!(generator.event(1).event_type(), "auction");
/// assert_eq!(generator.event(4).event_type(), "bid");
/// assert_eq!(generator.event(123), generator.event(123));
/// ```
#[derive(Debug, Clone)]
pub struct NexmarkGenerator {
    spec: NexmarkSpec,
    /// Mixed once from the seed; each event's generator is seeded with `seed_mix ^ i`.
    seed_mix: u64,
}

impl NexmarkGenerator {
    pub fn new(spec: &NexmarkSpec) -> Result<Self, super::NexmarkError> {
        spec.validate()?;
        Ok(Self { spec: spec.clone(), seed_mix: mix(spec.seed) })
    }

    pub fn spec(&self) -> &NexmarkSpec {
        &self.spec
    }

    fn denominator(&self) -> u64 {
        self.spec.person_proportion + self.spec.auction_proportion + self.spec.bid_proportion
    }

    /// The event number whose ids event `i` gets: `i`, shuffled within groups of
    /// `out_of_order_group_size` (Beam's `nextAdjustedEventNumber`); event time follows `i`.
    fn adjusted(&self, i: u64) -> u64 {
        let n = self.spec.out_of_order_group_size;
        if n <= 1 {
            return i;
        }
        (i / n) * n + (i.wrapping_mul(953) % n)
    }

    /// Event time of the `i`-th event before any delay: `base_time + i * 1000 / rate`.
    pub fn on_time(&self, i: u64) -> i64 {
        let rate = self.spec.event_rate();
        // u64 arithmetic while it fits (a 128-bit division costs a call per event).
        let offset = match i.checked_mul(1000) {
            Some(ms) => u128::from(ms / rate),
            None => u128::from(i) * 1000 / u128::from(rate),
        };
        self.spec.base_time_ms.saturating_add(i64::try_from(offset).unwrap_or(i64::MAX))
    }

    /// Event `i` (0-based) of the stream.
    pub fn event(&self, i: u64) -> Event {
        let mut rng = Rng::seed(self.seed_mix ^ i);
        // Both delay draws always happen, so what follows does not depend on the knobs.
        let delayed = rng.unit_f64() < self.spec.prob_delayed_event;
        let delay = 1 + rng.below(self.spec.occasional_delay_ms.max(1).unsigned_abs()) as i64;
        let on_time = self.on_time(i);
        let date_time = if delayed && self.spec.occasional_delay_ms > 0 {
            on_time.saturating_sub(delay).max(self.spec.base_time_ms)
        } else {
            on_time
        };
        let id = self.adjusted(i);
        let rem = id % self.denominator();
        if rem < self.spec.person_proportion {
            Event::Person(self.person(id, date_time, &mut rng))
        } else if rem < self.spec.person_proportion + self.spec.auction_proportion {
            Event::Auction(self.auction(i, id, on_time, date_time, &mut rng))
        } else {
            Event::Bid(self.bid(id, date_time, &mut rng))
        }
    }

    /// The last person id (base 0) generated at or before event `id`.
    fn last_base0_person_id(&self, id: u64) -> u64 {
        let (epoch, offset) = (id / self.denominator(), id % self.denominator());
        epoch * self.spec.person_proportion + offset.min(self.spec.person_proportion - 1)
    }

    /// The last auction id (base 0) generated at or before event `id`.
    fn last_base0_auction_id(&self, id: u64) -> u64 {
        let (mut epoch, mut offset) = (id / self.denominator(), id % self.denominator());
        let (people, auctions) = (self.spec.person_proportion, self.spec.auction_proportion);
        if offset < people {
            // About to generate a person: the last auction of the previous epoch.
            let Some(previous) = epoch.checked_sub(1) else { return 0 };
            epoch = previous;
            offset = auctions - 1;
        } else if offset >= people + auctions {
            offset = auctions - 1;
        } else {
            offset -= people;
        }
        epoch * auctions + offset
    }

    /// A person among the active ones, or one of the next few (Beam's `nextBase0PersonId`).
    fn next_base0_person_id(&self, id: u64, rng: &mut Rng) -> u64 {
        let people = self.last_base0_person_id(id) + 1;
        let active = people.min(self.spec.num_active_people);
        people - active + rng.below(active + PERSON_ID_LEAD)
    }

    /// An auction likely to be in flight, or one of the next few.
    fn next_base0_auction_id(&self, id: u64, rng: &mut Rng) -> u64 {
        let max = self.last_base0_auction_id(id);
        let min = max.saturating_sub(self.spec.num_in_flight_auctions);
        min + rng.below(max - min + 1 + AUCTION_ID_LEAD)
    }

    fn person(&self, id: u64, date_time: i64, rng: &mut Rng) -> Person {
        let name = format!("{} {}", pick(rng, &FIRST_NAMES), pick(rng, &LAST_NAMES));
        let email_address = format!("{}@{}.com", next_string(rng, 7), next_string(rng, 5));
        let credit_card = format!(
            "{:04} {:04} {:04} {:04}",
            rng.below(10_000),
            rng.below(10_000),
            rng.below(10_000),
            rng.below(10_000)
        );
        let city = pick(rng, &US_CITIES).to_string();
        let state = pick(rng, &US_STATES).to_string();
        let size = 8 + name.len() + email_address.len() + credit_card.len() + city.len() + state.len();
        let extra = next_extra(rng, size, self.spec.avg_person_byte_size);
        Person {
            id: self.last_base0_person_id(id) + FIRST_PERSON_ID,
            name,
            email_address,
            credit_card,
            city,
            state,
            date_time,
            extra,
        }
    }

    fn auction(&self, i: u64, id: u64, on_time: i64, date_time: i64, rng: &mut Rng) -> Auction {
        let seller = if rng.below(self.spec.hot_sellers_ratio) > 0 {
            // The first person of the last batch of HOT_SELLER_RATIO.
            (self.last_base0_person_id(id) / HOT_SELLER_RATIO) * HOT_SELLER_RATIO
        } else {
            self.next_base0_person_id(id, rng)
        } + FIRST_PERSON_ID;
        let category = FIRST_CATEGORY_ID + rng.below(NUM_CATEGORIES);
        let initial_bid = next_price(rng);
        // On average as long as it takes to generate `num_in_flight_auctions` more auctions.
        let events_for_auctions =
            self.spec.num_in_flight_auctions * self.denominator() / self.spec.auction_proportion.max(1);
        let horizon = self.on_time(self.adjusted(i).saturating_add(events_for_auctions)) - on_time;
        let length = 1 + rng.below(u64::try_from(horizon.saturating_mul(2)).unwrap_or(1).max(1)) as i64;
        let item_name = next_string(rng, 20);
        let description = next_string(rng, 100);
        let reserve = initial_bid + next_price(rng);
        let size = 8 + item_name.len() + description.len() + 8 + 8 + 8 + 8 + 8;
        let extra = next_extra(rng, size, self.spec.avg_auction_byte_size);
        Auction {
            id: self.last_base0_auction_id(id) + FIRST_AUCTION_ID,
            item_name,
            description,
            initial_bid,
            reserve,
            date_time,
            expires: on_time.saturating_add(length),
            seller,
            category,
            extra,
        }
    }

    fn bid(&self, id: u64, date_time: i64, rng: &mut Rng) -> Bid {
        let auction = if rng.below(self.spec.hot_auction_ratio) > 0 {
            // The first auction of the last batch of HOT_AUCTION_RATIO.
            (self.last_base0_auction_id(id) / HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO
        } else {
            self.next_base0_auction_id(id, rng)
        } + FIRST_AUCTION_ID;
        let bidder = if rng.below(self.spec.hot_bidders_ratio) > 0 {
            // The second person of the last batch of HOT_BIDDER_RATIO (the first is the hot seller).
            (self.last_base0_person_id(id) / HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
        } else {
            self.next_base0_person_id(id, rng)
        } + FIRST_PERSON_ID;
        let price = next_price(rng);
        let (channel, url) = if rng.below(HOT_CHANNELS_RATIO) > 0 {
            let hot = rng.below(HOT_CHANNELS.len() as u64) as usize;
            (HOT_CHANNELS[hot].to_string(), channel_url(hot as u64).to_string())
        } else {
            let n = rng.below(CHANNELS_NUMBER);
            (format!("channel-{n}"), channel_url(n).to_string())
        };
        let extra = next_extra(rng, 32, self.spec.avg_bid_byte_size);
        Bid { auction, bidder, price, channel, url, date_time, extra }
    }
}

/// A bijective mix of the seed (SplitMix64's finalizer), so that `mix(seed) ^ i` gives
/// every event of a seed its own generator state.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn pick<'a>(rng: &mut Rng, values: &[&'a str]) -> &'a str {
    values[rng.below(values.len() as u64) as usize]
}

/// Beam's `nextPrice`: `round(10^(6u) * 100)` cents, from 1 to 100 M.
fn next_price(rng: &mut Rng) -> u64 {
    (10f64.powf(rng.unit_f64() * 6.0) * 100.0).round() as u64
}

/// Beam's `nextString`: 3 to `max_length - 1` characters, `a-z` with one in 13 a space,
/// trimmed.
fn next_string(rng: &mut Rng, max_length: u64) -> String {
    let len = MIN_STRING_LENGTH + rng.below(max_length - MIN_STRING_LENGTH);
    let mut s = String::with_capacity(len as usize);
    for _ in 0..len {
        if rng.below(13) == 0 {
            s.push(' ');
        } else {
            s.push(char::from(b'a' + rng.below(26) as u8));
        }
    }
    s.trim().to_string()
}

/// Beam's `nextExactString`: `length` letters `a-z`, thirteen from each 64-bit draw.
fn next_exact_string(rng: &mut Rng, length: usize) -> String {
    let mut s = String::with_capacity(length);
    let (mut bits, mut left) = (0u64, 0);
    for _ in 0..length {
        if left == 0 {
            bits = rng.next_u64();
            left = 13;
        }
        s.push(char::from(b'a' + (bits % 26) as u8));
        bits /= 26;
        left -= 1;
    }
    s
}

/// Beam's `nextExtra`: padding that brings a record of `current` bytes to `average` bytes
/// on average, within ±20%.
fn next_extra(rng: &mut Rng, current: usize, average: u64) -> String {
    let average = usize::try_from(average).unwrap_or(usize::MAX);
    if current > average {
        return String::new();
    }
    let wanted = average - current;
    let delta = (wanted as f64 * 0.2).round() as usize;
    let size = wanted - delta + if delta == 0 { 0 } else { rng.below(2 * delta as u64) as usize };
    next_exact_string(rng, size)
}

/// The URL of bid channel `n` (hot channels use `0..4`): three path segments of 3 to 5
/// letters drawn from a generator seeded with `n`, so the URL depends on the channel alone.
fn channel_url(n: u64) -> &'static str {
    static URLS: OnceLock<Vec<String>> = OnceLock::new();
    let urls = URLS.get_or_init(|| {
        (0..CHANNELS_NUMBER)
            .map(|n| {
                let mut rng = Rng::seed(n);
                let length = 3 + (n % 3) as usize;
                let mut segment = || next_exact_string(&mut rng, length);
                let (a, b, c) = (segment(), segment(), segment());
                format!("https://www.nexmark.com/{a}/{b}/{c}/item.htm?query=1&channel_id={n}")
            })
            .collect()
    });
    urls.get(n as usize).map_or("", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(spec: NexmarkSpec) -> NexmarkGenerator {
        NexmarkGenerator::new(&spec).expect("a valid spec")
    }

    #[test]
    fn proportions_follow_the_one_three_forty_six_split() {
        let g = generator(NexmarkSpec::new(5_000));
        let mut counts = [0u64; 3];
        for i in 0..5_000 {
            counts[match g.event(i) {
                Event::Person(_) => 0,
                Event::Auction(_) => 1,
                Event::Bid(_) => 2,
            }] += 1;
        }
        assert_eq!(counts, [100, 300, 4_600]);
    }

    #[test]
    fn ids_count_up_and_references_point_at_generated_or_leading_ids() {
        let g = generator(NexmarkSpec::new(10_000).seed(3));
        let (mut people, mut auctions) = (0u64, 0u64);
        for i in 0..10_000 {
            match g.event(i) {
                Event::Person(p) => {
                    assert_eq!(p.id, FIRST_PERSON_ID + people);
                    people += 1;
                }
                Event::Auction(a) => {
                    assert_eq!(a.id, FIRST_AUCTION_ID + auctions);
                    auctions += 1;
                    assert!(a.seller < FIRST_PERSON_ID + people + PERSON_ID_LEAD, "{a:?}");
                    assert!((FIRST_CATEGORY_ID..FIRST_CATEGORY_ID + NUM_CATEGORIES).contains(&a.category));
                    assert!(a.reserve >= a.initial_bid && a.expires > a.date_time, "{a:?}");
                }
                Event::Bid(b) => {
                    assert!(b.auction < FIRST_AUCTION_ID + auctions + AUCTION_ID_LEAD, "{b:?}");
                    assert!(b.bidder < FIRST_PERSON_ID + people + PERSON_ID_LEAD, "{b:?}");
                    assert!((1..=100_000_000).contains(&b.price), "{b:?}");
                }
            }
        }
    }

    #[test]
    fn hot_auctions_get_about_half_the_bids() {
        let g = generator(NexmarkSpec::new(50_000).seed(1));
        let (mut bids, mut hot) = (0, 0);
        for i in 0..50_000 {
            if let Event::Bid(b) = g.event(i) {
                bids += 1;
                // The hot auction of a bid is the first of its batch of 100.
                hot += u64::from((b.auction - FIRST_AUCTION_ID).is_multiple_of(HOT_AUCTION_RATIO));
            }
        }
        // Hot ratio 2: half the bids go to the hot auction, the rest mostly elsewhere.
        let share = hot as f64 / bids as f64;
        assert!((0.48..0.56).contains(&share), "{share}");
    }

    #[test]
    fn event_time_follows_the_rate_and_delays_stay_within_the_bound() {
        let spec = NexmarkSpec::new(20_000).rate(1_000).seed(9);
        let g = generator(spec.clone());
        let mut delayed = 0;
        for i in 0..20_000 {
            let on_time = spec.base_time_ms + i as i64; // 1000 events/s: one per ms
            let t = g.event(i).date_time();
            assert!(t <= on_time && t >= on_time - spec.occasional_delay_ms, "event {i}: {t} vs {on_time}");
            delayed += u64::from(t < on_time);
        }
        let share = delayed as f64 / 20_000.0;
        assert!((0.08..0.12).contains(&share), "{share}");
    }

    #[test]
    fn records_are_near_the_average_sizes() {
        let g = generator(NexmarkSpec::new(5_000));
        let mut sizes = [(0usize, 0usize); 3];
        for i in 0..5_000 {
            let e = g.event(i);
            let mut out = Vec::new();
            crate::connectors::nexmark::event::write(&e, &mut out);
            let k = ["person", "auction", "bid"].iter().position(|t| *t == e.event_type()).unwrap_or(0);
            sizes[k].0 += out.len();
            sizes[k].1 += 1;
        }
        let avg: Vec<usize> = sizes.iter().map(|(bytes, n)| bytes / n).collect();
        // Field names add to Beam's byte counts, which count values only.
        assert!(
            (200..330).contains(&avg[0]) && (500..650).contains(&avg[1]) && (100..260).contains(&avg[2]),
            "{avg:?}"
        );
    }

    #[test]
    fn the_shuffle_permutes_ids_within_groups() {
        let g = generator(NexmarkSpec::new(1_000).out_of_order_group_size(10));
        let mut adjusted: Vec<u64> = (0..100).map(|i| g.adjusted(i)).collect();
        assert_ne!(adjusted, (0..100).collect::<Vec<_>>());
        adjusted.sort_unstable();
        assert_eq!(adjusted, (0..100).collect::<Vec<_>>());
    }
}
