//! q3 (local item suggestion: a regular join of people and auctions) and q8 (new users: a
//! window join of people and the auctions they open in the same 10 s), as keyed process
//! functions over streams keyed by person id / seller ([`crate::person_or_seller`]).

use serde::{Deserialize, Serialize};
use weir::process::{Collector, Context, KeyedProcessFunction, NoBroadcast, ProcessResult, StateDecl};

use crate::model::{PersonOrAuction, window_start};

/// q8's tumbling window.
pub const Q8_WINDOW_MS: i64 = 10_000;

/// A person as q3 keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seller {
    pub name: String,
    pub city: String,
    pub state: String,
    pub date_time: i64,
}

/// q3's output: `SELECT P.name, P.city, P.state, A.id FROM auction A JOIN person P ON
/// A.seller = P.id WHERE A.category = 10 AND P.state IN ('OR', 'ID', 'CA')`, plus the later
/// of the two event times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalItem {
    pub name: String,
    pub city: String,
    pub state: String,
    pub id: u64,
    pub date_time: i64,
}

/// q3 on the host's join (`benches/nexmark/q3-join.yaml`): people from Oregon, Idaho or
/// California, the join's left side.
#[weir::filter]
pub fn q3_person(event: &PersonOrAuction) -> bool {
    event.event_type == "person" && matches!(event.state.as_deref(), Some("OR" | "ID" | "CA"))
}

/// q3 on the host's join: auctions of category 10, the join's right side.
#[weir::filter]
pub fn q3_auction(event: &PersonOrAuction) -> bool {
    event.event_type == "auction" && event.category == Some(10)
}

/// A pair the host's join of `persons` and `auctions` emits.
#[derive(Debug, Clone, Deserialize)]
pub struct PersonAuction {
    pub persons: PersonOrAuction,
    pub auctions: PersonOrAuction,
}

/// q3 on the host's join: a joined pair as q3's output, the same as `q3_join`'s.
#[weir::map]
pub fn q3_item(pair: PersonAuction) -> Result<LocalItem, String> {
    let (p, a) = (pair.persons, pair.auctions);
    let person = Seller {
        name: p.name.ok_or("a person without `name`")?,
        city: p.city.ok_or("a person without `city`")?,
        state: p.state.ok_or("a person without `state`")?,
        date_time: p.date_time.ok_or("a person without `date_time`")?,
    };
    let id = a.id.ok_or("an auction without `id`")?;
    Ok(item(&person, id, a.date_time.ok_or("an auction without `date_time`")?))
}

/// An auction waiting for its seller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiting {
    pub id: u64,
    pub date_time: i64,
}

/// q3: keyed by person id; keeps the person (value `seller`) and emits each auction of
/// theirs as it comes, or, for auctions that came first (a seller may be a few ids ahead of
/// the last person), when the person comes (list `waiting`). Needs `q3_filter` before it.
#[derive(Debug, Default)]
pub struct Q3Join;

impl KeyedProcessFunction for Q3Join {
    type Input = PersonOrAuction;
    type Output = LocalItem;
    type Broadcast = NoBroadcast;
    const STATES: &'static [StateDecl] = &[StateDecl::value::<Seller>("seller"), StateDecl::list::<Waiting>("waiting")];

    fn process_element(
        &mut self,
        event: PersonOrAuction,
        ctx: &Context<'_>,
        out: &mut Collector<'_, LocalItem>,
    ) -> ProcessResult {
        let date_time = event.date_time.ok_or("q3 needs `date_time`")?;
        let seller = ctx.value::<Seller>("seller")?;
        let waiting = ctx.list::<Waiting>("waiting")?;
        match event.event_type.as_str() {
            "person" => {
                let person = Seller {
                    name: event.name.ok_or("a person without `name`")?,
                    city: event.city.ok_or("a person without `city`")?,
                    state: event.state.ok_or("a person without `state`")?,
                    date_time,
                };
                for auction in waiting.get()? {
                    out.collect(item(&person, auction.id, auction.date_time));
                }
                waiting.clear()?;
                seller.set(&person)?;
            }
            "auction" => {
                let id = event.id.ok_or("an auction without `id`")?;
                match seller.get()? {
                    Some(person) => out.collect(item(&person, id, date_time)),
                    None => waiting.append(&Waiting { id, date_time })?,
                }
            }
            other => return Err(format!("q3 joins people and auctions, not a {other}").into()),
        }
        Ok(())
    }
}

/// The output for `person`'s auction `auction` of time `auction_time`.
fn item(person: &Seller, auction: u64, auction_time: i64) -> LocalItem {
    LocalItem {
        name: person.name.clone(),
        city: person.city.clone(),
        state: person.state.clone(),
        id: auction,
        date_time: person.date_time.max(auction_time),
    }
}

/// What q8 knows of one key's window: the person, if they registered in it, and whether
/// they opened an auction in it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewUserWindow {
    pub name: Option<String>,
    pub auctions: u64,
}

/// q8's output: a person who registered and opened an auction in the same 10 s window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewUser {
    pub id: u64,
    pub name: String,
    pub window_start: i64,
    pub window_end: i64,
}

/// q8: keyed by person id; per 10 s window (map state `windows`, keyed by window start)
/// notes the person and their auctions; when the watermark passes the window's end (an
/// event-time timer), emits the person if both happened, and forgets the window. Needs
/// event time.
#[derive(Debug, Default)]
pub struct Q8NewUsers;

impl KeyedProcessFunction for Q8NewUsers {
    type Input = PersonOrAuction;
    type Output = NewUser;
    type Broadcast = NoBroadcast;
    const STATES: &'static [StateDecl] = &[StateDecl::map::<i64, NewUserWindow>("windows")];

    fn process_element(
        &mut self,
        event: PersonOrAuction,
        ctx: &Context<'_>,
        _: &mut Collector<'_, NewUser>,
    ) -> ProcessResult {
        let at = ctx.timestamp().ok_or("q8 needs event time: assign timestamps before it")?;
        let start = window_start(at, Q8_WINDOW_MS);
        let windows = ctx.map::<i64, NewUserWindow>("windows")?;
        let mut window = windows.get(&start)?.unwrap_or_default();
        match event.event_type.as_str() {
            "person" => window.name = Some(event.name.ok_or("a person without `name`")?),
            "auction" => window.auctions += 1,
            other => return Err(format!("q8 joins people and auctions, not a {other}").into()),
        }
        windows.put(&start, &window)?;
        ctx.timer_service().register_event_time_timer(start + Q8_WINDOW_MS - 1);
        Ok(())
    }

    fn on_timer(&mut self, at: i64, ctx: &Context<'_>, out: &mut Collector<'_, NewUser>) -> ProcessResult {
        let start = at + 1 - Q8_WINDOW_MS;
        let windows = ctx.map::<i64, NewUserWindow>("windows")?;
        if let Some(window) = windows.get(&start)? {
            if let (Some(name), true) = (window.name, window.auctions > 0) {
                out.collect(NewUser {
                    id: ctx.current_key()?,
                    name,
                    window_start: start,
                    window_end: start + Q8_WINDOW_MS,
                });
            }
            windows.remove(&start)?;
        }
        Ok(())
    }
}
