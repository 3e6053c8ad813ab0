//! Flink's fraud-detection walkthrough, with rules on a broadcast stream.
//!
//! Transactions are keyed by account. A small transaction (below `small`, 1.00 by default)
//! sets the account's `flag` (value state, the small amount) and a timer a minute later;
//! a large one (above `large`, 500.00 by default) while the flag is set raises an [`Alert`].
//! Any transaction after a small one clears the flag (a small one sets it again), and so does
//! the timer. With event time (elements with timestamps) the minute is event time, measured
//! between the two transactions; without, it is processing time.
//!
//! The thresholds come from broadcast state `rules` when a rule is there: the rule named like
//! the account, else the rule `default`, else the built-in ones. The broadcast side receives
//! [`Rule`]s and writes them.

use rmpv::Value;
use serde::{Deserialize, Serialize};
use weir::process::{BroadcastContext, Collector, Context, KeyedProcessFunction, ProcessResult, StateDecl, StateError};

/// Below this, a transaction is small (without a rule).
pub const SMALL_AMOUNT: f64 = 1.00;
/// Above this, a transaction is large (without a rule).
pub const LARGE_AMOUNT: f64 = 500.00;
/// How long after a small transaction a large one raises an alert.
pub const ONE_MINUTE_MS: i64 = 60_000;

/// An element of the keyed stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    pub account: Value,
    pub amount: f64,
}

/// A small transaction followed by a large one on the same account within a minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub account: Value,
    pub small: f64,
    pub large: f64,
}

/// An element of the broadcast stream: the thresholds for the account `name`, or for every
/// account without its own rule when `name` is `default`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub name: String,
    pub small: f64,
    pub large: f64,
}

/// A rule as broadcast state keeps it, by name.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub small: f64,
    pub large: f64,
}

/// The timer an account's flag waits on (value state `timer`), to delete it when the flag
/// clears first.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PendingTimer {
    pub at: i64,
    pub event_time: bool,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct FraudDetector;

impl FraudDetector {
    fn thresholds(ctx: &Context<'_>, account: &Value) -> Result<Thresholds, StateError> {
        let rules = ctx.broadcast::<String, Thresholds>("rules")?;
        let own = match account.as_str() {
            Some(name) => name.to_string(),
            None => account.to_string(),
        };
        if let Some(rule) = rules.get(&own)? {
            return Ok(rule);
        }
        Ok(rules.get(&"default".to_string())?.unwrap_or(Thresholds { small: SMALL_AMOUNT, large: LARGE_AMOUNT }))
    }

    /// Forgets the flag and its timer.
    fn clean_up(ctx: &Context<'_>, pending: Option<PendingTimer>) -> Result<(), StateError> {
        if let Some(timer) = pending {
            let timers = ctx.timer_service();
            if timer.event_time {
                timers.delete_event_time_timer(timer.at);
            } else {
                timers.delete_processing_time_timer(timer.at);
            }
        }
        ctx.value::<PendingTimer>("timer")?.clear()?;
        ctx.value::<f64>("flag")?.clear()
    }
}

impl KeyedProcessFunction for FraudDetector {
    type Input = Transaction;
    type Output = Alert;
    type Broadcast = Rule;
    const STATES: &'static [StateDecl] = &[
        StateDecl::value::<f64>("flag"),
        StateDecl::value::<PendingTimer>("timer"),
        StateDecl::broadcast_map::<String, Thresholds>("rules"),
    ];

    fn process_element(&mut self, tx: Transaction, ctx: &Context<'_>, out: &mut Collector<'_, Alert>) -> ProcessResult {
        let thresholds = Self::thresholds(ctx, &tx.account)?;
        let flag = ctx.value::<f64>("flag")?;
        let timer = ctx.value::<PendingTimer>("timer")?;
        if let Some(small) = flag.get()? {
            let pending = timer.get()?;
            let within_a_minute = match (pending, ctx.timestamp()) {
                (Some(p), Some(at)) if p.event_time => at < p.at,
                _ => true, // processing time: the timer clears the flag when the minute is up
            };
            if within_a_minute && tx.amount > thresholds.large {
                out.collect(Alert { account: tx.account.clone(), small, large: tx.amount });
            }
            Self::clean_up(ctx, pending)?;
        }
        if tx.amount < thresholds.small {
            let timers = ctx.timer_service();
            let pending = match ctx.timestamp() {
                Some(at) => PendingTimer { at: at + ONE_MINUTE_MS, event_time: true },
                None => PendingTimer { at: timers.current_processing_time() + ONE_MINUTE_MS, event_time: false },
            };
            if pending.event_time {
                timers.register_event_time_timer(pending.at);
            } else {
                timers.register_processing_time_timer(pending.at);
            }
            flag.set(&tx.amount)?;
            timer.set(&pending)?;
        }
        Ok(())
    }

    fn on_timer(&mut self, _: i64, ctx: &Context<'_>, _: &mut Collector<'_, Alert>) -> ProcessResult {
        ctx.value::<PendingTimer>("timer")?.clear()?;
        ctx.value::<f64>("flag")?.clear()?;
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        rule: Rule,
        ctx: &BroadcastContext<'_>,
        _: &mut Collector<'_, Alert>,
    ) -> ProcessResult {
        // NaN compares false both ways: refuse it with inverted thresholds.
        if rule.small.partial_cmp(&rule.large).is_none_or(|order| order.is_gt()) {
            return Err(format!(
                "rule `{}`: small ({}) must be a number not above large ({})",
                rule.name, rule.small, rule.large
            )
            .into());
        }
        ctx.broadcast::<String, Thresholds>("rules")?
            .put(&rule.name, &Thresholds { small: rule.small, large: rule.large })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use weir::process::TimeDomain;
    use weir::testing::ProcessHarness;

    use super::*;
    use crate::PLUGIN;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn tx(account: &str, amount: f64) -> Transaction {
        Transaction { account: account.into(), amount }
    }

    fn alert(account: &str, small: f64, large: f64) -> Alert {
        Alert { account: account.into(), small, large }
    }

    fn detector() -> ProcessHarness {
        ProcessHarness::new(&PLUGIN, "fraud_detector")
    }

    #[test]
    fn a_small_then_a_large_transaction_within_a_minute_alerts() -> TestResult {
        let mut h = detector();
        h.process("acc-1", tx("acc-1", 0.50), 1_000)?;
        h.process("acc-2", tx("acc-2", 0.10), 1_000)?;
        h.process("acc-2", tx("acc-2", 20.00), 2_000)?; // not large: clears acc-2's flag
        h.process("acc-2", tx("acc-2", 900.00), 3_000)?;
        h.process("acc-1", tx("acc-1", 600.00), 60_999)?;
        assert_eq!(h.output::<Alert>(), [alert("acc-1", 0.50, 600.00)]);
        assert_eq!(h.value_state::<f64>("acc-1", "flag"), None);
        assert_eq!(h.timer_count(TimeDomain::EventTime), 0, "both flags cleared with their timers");
        Ok(())
    }

    #[test]
    fn a_large_transaction_a_minute_or_more_later_does_not_alert() -> TestResult {
        let mut h = detector();
        h.process("acc-1", tx("acc-1", 0.50), 1_000)?;
        assert_eq!(h.timers("acc-1"), [(TimeDomain::EventTime, 61_000)]);
        h.process("acc-1", tx("acc-1", 600.00), 61_000)?; // the watermark has not passed yet
        h.process("acc-2", tx("acc-2", 0.50), 1_000)?;
        h.advance_watermark(61_000)?; // acc-2's timer clears its flag
        assert_eq!(h.value_state::<f64>("acc-2", "flag"), None);
        h.process("acc-2", tx("acc-2", 600.00), 61_500)?;
        assert!(h.output::<Alert>().is_empty());
        Ok(())
    }

    #[test]
    fn without_event_time_the_minute_is_processing_time() -> TestResult {
        let mut h = detector();
        h.advance_processing_time(10_000)?;
        h.process("acc-1", tx("acc-1", 0.50), None)?;
        assert_eq!(h.timers("acc-1"), [(TimeDomain::ProcessingTime, 70_000)]);
        h.process("acc-1", tx("acc-1", 501.00), None)?;
        h.process("acc-1", tx("acc-1", 0.75), None)?;
        h.advance_processing_time(70_000)?;
        h.process("acc-1", tx("acc-1", 501.00), None)?;
        assert_eq!(h.output::<Alert>(), [alert("acc-1", 0.50, 501.00)]);
        Ok(())
    }

    #[test]
    fn broadcast_rules_set_the_thresholds_of_one_account_or_of_all() -> TestResult {
        let mut h = detector();
        h.broadcast(Rule { name: "default".into(), small: 10.0, large: 100.0 })?;
        h.broadcast(Rule { name: "vip".into(), small: 1.0, large: 10_000.0 })?;
        for account in ["acc-1", "vip"] {
            h.process(account, tx(account, 5.00), 0)?;
            h.process(account, tx(account, 150.00), 1)?;
        }
        assert_eq!(h.take_output::<Alert>(), [alert("acc-1", 5.00, 150.00)], "vip: 5.00 is not small");
        h.broadcast(Rule { name: "default".into(), small: 10.0, large: 1_000.0 })?;
        h.process("acc-1", tx("acc-1", 5.00), 2)?;
        h.process("acc-1", tx("acc-1", 150.00), 3)?;
        assert!(h.output::<Alert>().is_empty(), "the new default rule replaced the old one");
        let rules = h.broadcast_state::<String, Thresholds>("rules");
        assert_eq!(
            rules,
            [
                ("vip".into(), Thresholds { small: 1.0, large: 10_000.0 }),
                ("default".into(), Thresholds { small: 10.0, large: 1_000.0 }),
            ]
        );
        Ok(())
    }

    #[test]
    fn an_inverted_rule_is_refused() {
        let mut h = detector();
        let error = h.broadcast(Rule { name: "bad".into(), small: 9.0, large: 1.0 }).expect_err("inverted");
        assert!(error.to_string().contains("rule `bad`: small (9) must be a number not above large (1)"), "{error}");
        let error = h.broadcast(Rule { name: "nan".into(), small: f64::NAN, large: 1.0 }).expect_err("not a number");
        assert!(error.to_string().contains("small (NaN) must be a number"), "{error}");
        assert!(h.broadcast_state::<String, Thresholds>("rules").is_empty());
    }
}
