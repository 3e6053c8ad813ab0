//! The process functions of ABI 0.2: a co-process function (two connected inputs) with a
//! side output, a function emitting an updating result (row kinds), and a process-window
//! function.

use rmpv::Value;
use serde::{Deserialize, Serialize};
use weir::process::{
    Collector, Context, KeyedCoProcessFunction, KeyedProcessFunction, NoBroadcast, ProcessResult,
    ProcessWindowFunction, RowKind, StateDecl, Window,
};

/// An order (input 1 of `match_payments`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub amount: f64,
}

/// A payment (input 2 of `match_payments`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub id: String,
    pub paid: f64,
}

/// An order with its payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paid {
    pub id: String,
    pub amount: f64,
    pub paid: f64,
}

/// Matches orders (input 1) and payments (input 2) of the same key, in either order: the
/// first to come waits in value state; a payment that comes before its order waits too, and a
/// second payment of a key already paid goes to the side output `duplicate`.
#[derive(Debug, Default)]
pub struct MatchPayments;

impl KeyedCoProcessFunction for MatchPayments {
    type Input1 = Order;
    type Input2 = Payment;
    type Output = Paid;
    const STATES: &'static [StateDecl] =
        &[StateDecl::value::<Order>("order"), StateDecl::value::<Payment>("payment"), StateDecl::value::<bool>("done")];

    fn process_element1(&mut self, order: Order, ctx: &Context<'_>, out: &mut Collector<'_, Paid>) -> ProcessResult {
        let payment = ctx.value::<Payment>("payment")?;
        match payment.get()? {
            Some(p) => {
                payment.clear()?;
                ctx.value::<bool>("done")?.set(&true)?;
                out.collect(Paid { id: order.id, amount: order.amount, paid: p.paid });
            }
            None => ctx.value::<Order>("order")?.set(&order)?,
        }
        Ok(())
    }

    fn process_element2(&mut self, p: Payment, ctx: &Context<'_>, out: &mut Collector<'_, Paid>) -> ProcessResult {
        let done = ctx.value::<bool>("done")?;
        if done.get()?.unwrap_or(false) {
            ctx.output("duplicate", &p)?;
            return Ok(());
        }
        let order = ctx.value::<Order>("order")?;
        match order.get()? {
            Some(o) => {
                order.clear()?;
                done.set(&true)?;
                out.collect(Paid { id: o.id, amount: o.amount, paid: p.paid });
            }
            None => ctx.value::<Payment>("payment")?.set(&p)?,
        }
        Ok(())
    }
}

/// `{key, amount}`: the latest amount of a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latest {
    pub key: Value,
    pub amount: f64,
}

/// An updating result: the latest `amount` of each key. The first element of a key inserts
/// `{key, amount}`; each later one withdraws the previous row (`update-before`) and gives
/// the new one (`update-after`), as a Flink SQL `GROUP BY` emits.
#[derive(Debug, Default)]
pub struct LatestAmount;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Amount {
    /// 0 when the record has none (so any record can be counted).
    #[serde(default)]
    pub amount: f64,
}

impl KeyedProcessFunction for LatestAmount {
    type Input = Amount;
    type Output = Latest;
    type Broadcast = NoBroadcast;
    const STATES: &'static [StateDecl] = &[StateDecl::value::<f64>("last")];

    fn process_element(&mut self, e: Amount, ctx: &Context<'_>, out: &mut Collector<'_, Latest>) -> ProcessResult {
        let last = ctx.value::<f64>("last")?;
        let key: Value = ctx.current_key()?;
        match last.get()? {
            Some(previous) => {
                out.collect_kind(RowKind::UpdateBefore, Latest { key: key.clone(), amount: previous });
                out.collect_kind(RowKind::UpdateAfter, Latest { key, amount: e.amount });
            }
            None => out.collect(Latest { key, amount: e.amount }),
        }
        last.set(&e.amount)?;
        Ok(())
    }
}

/// What `window_stats` emits per window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    pub key: Value,
    pub start: i64,
    pub end: i64,
    pub count: usize,
    pub max: f64,
}

/// A process-window function: the count and the largest `amount` of a key's window, with
/// the window's bounds.
#[derive(Debug, Default)]
pub struct WindowStatsFn;

impl ProcessWindowFunction for WindowStatsFn {
    type Key = Value;
    type Input = Amount;
    type Output = WindowStats;

    fn process(
        &mut self,
        key: Value,
        window: Window,
        elements: Vec<Amount>,
        out: &mut Collector<'_, WindowStats>,
    ) -> ProcessResult {
        let max = elements.iter().map(|e| e.amount).fold(f64::NEG_INFINITY, f64::max);
        out.collect(WindowStats { key, start: window.start, end: window.end, count: elements.len(), max });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use weir::testing::ProcessHarness;

    use super::*;
    use crate::PLUGIN;

    #[test]
    fn orders_and_payments_match_in_either_order_and_duplicates_go_aside() {
        let mut h = ProcessHarness::new(&PLUGIN, "match_payments");
        let order = |id: &str, amount| Order { id: id.into(), amount };
        let payment = |id: &str, paid| Payment { id: id.into(), paid };
        h.process("o1", order("o1", 10.0), None).unwrap();
        h.process2("o2", payment("o2", 7.0), None).unwrap();
        h.process2("o1", payment("o1", 10.0), None).unwrap();
        h.process("o2", order("o2", 7.5), None).unwrap();
        h.process2("o1", payment("o1", 10.0), None).unwrap();
        assert_eq!(
            h.output::<Paid>(),
            [Paid { id: "o1".into(), amount: 10.0, paid: 10.0 }, Paid { id: "o2".into(), amount: 7.5, paid: 7.0 }]
        );
        assert_eq!(h.side_output::<Payment>("duplicate"), [Payment { id: "o1".into(), paid: 10.0 }]);
        assert_eq!(h.value_state::<Order>("o1", "order"), None);
        assert_eq!(h.value_state::<bool>("o2", "done"), Some(true));
    }

    #[test]
    fn an_element_of_the_wrong_input_type_fails_alone() {
        let mut h = ProcessHarness::new(&PLUGIN, "match_payments");
        let err = h.process2("o1", Order { id: "o1".into(), amount: 1.0 }, None).unwrap_err();
        assert!(err.to_string().contains("element of input 2 does not decode"), "{err}");
    }

    #[test]
    fn later_amounts_update_the_row_of_their_key() {
        let mut h = ProcessHarness::new(&PLUGIN, "latest_amount");
        h.process_batch([("a", Amount { amount: 1.0 }, None), ("a", Amount { amount: 2.0 }, None)]).unwrap();
        h.process("b", Amount { amount: 5.0 }, None).unwrap();
        let rows: Vec<(String, f64)> =
            h.output::<Latest>().into_iter().map(|l| (l.key.as_str().unwrap().to_string(), l.amount)).collect();
        assert_eq!(rows, [("a".into(), 1.0), ("a".into(), 1.0), ("a".into(), 2.0), ("b".into(), 5.0)]);
        assert_eq!(h.output_kinds(), [RowKind::Insert, RowKind::UpdateBefore, RowKind::UpdateAfter, RowKind::Insert]);
    }

    #[test]
    fn a_window_gets_all_its_elements_and_its_bounds() {
        let mut h = ProcessHarness::new(&PLUGIN, "window_stats");
        let window = Window { start: 0, end: 1000 };
        h.process_window("a", window, [3.0, 9.5, 1.0].map(|amount| Amount { amount })).unwrap();
        let stats = h.output::<WindowStats>();
        assert_eq!((stats[0].start, stats[0].end, stats[0].count, stats[0].max), (0, 1000, 3, 9.5));
        assert_eq!(stats[0].key, Value::from("a"));
    }
}
