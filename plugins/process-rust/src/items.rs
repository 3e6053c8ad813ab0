//! Map state: counts per item within each key.

use std::collections::BTreeMap;

use rmpv::Value;
use serde::{Deserialize, Serialize};
use weir::process::{Collector, Context, KeyedProcessFunction, NoBroadcast, ProcessResult, StateDecl};

/// An input of [`MapStateDemo`]: count `item` once more, or forget it (`remove: true`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemEvent {
    pub item: String,
    #[serde(default)]
    pub remove: bool,
}

/// The key's counts after an element.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemCounts {
    pub key: Value,
    pub counts: BTreeMap<String, u64>,
}

/// Counts items per key in map state `counts` (item -> count) and emits every count of the key
/// after each element. Removing an item the key has not counted fails the element.
#[derive(Debug, Default)]
pub struct MapStateDemo;

impl KeyedProcessFunction for MapStateDemo {
    type Input = ItemEvent;
    type Output = ItemCounts;
    type Broadcast = NoBroadcast;
    const STATES: &'static [StateDecl] = &[StateDecl::map::<String, u64>("counts")];

    fn process_element(
        &mut self,
        e: ItemEvent,
        ctx: &Context<'_>,
        out: &mut Collector<'_, ItemCounts>,
    ) -> ProcessResult {
        let counts = ctx.map::<String, u64>("counts")?;
        if e.remove {
            if !counts.contains(&e.item)? {
                return Err(format!("cannot remove item `{}`: this key has not counted it", e.item).into());
            }
            counts.remove(&e.item)?;
        } else {
            let n = counts.get(&e.item)?.unwrap_or(0) + 1;
            counts.put(&e.item, &n)?;
        }
        out.collect(ItemCounts { key: ctx.current_key()?, counts: counts.entries()?.into_iter().collect() });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use weir::testing::ProcessHarness;

    use super::*;
    use crate::PLUGIN;

    fn add(item: &str) -> ItemEvent {
        ItemEvent { item: item.into(), remove: false }
    }

    fn remove(item: &str) -> ItemEvent {
        ItemEvent { item: item.into(), remove: true }
    }

    #[test]
    fn counts_items_per_key_and_forgets_removed_ones() -> Result<(), Box<dyn std::error::Error>> {
        let mut h = ProcessHarness::new(&PLUGIN, "map_state_demo");
        h.process("alice", add("pear"), None)?;
        h.process("alice", add("apple"), None)?;
        h.process("bob", add("pear"), None)?;
        h.process("alice", add("pear"), None)?;
        // Entries come in the order of their keys' MessagePack bytes, as the host keeps them: a
        // string's length comes first, so "pear" before "apple".
        assert_eq!(h.map_state::<String, u64>("alice", "counts"), [("pear".into(), 2), ("apple".into(), 1)]);
        h.process("alice", remove("apple"), None)?;
        let last = h.output::<ItemCounts>().pop().ok_or("no output")?;
        assert_eq!(last, ItemCounts { key: "alice".into(), counts: BTreeMap::from([("pear".into(), 2)]) });
        assert_eq!(h.map_state::<String, u64>("bob", "counts"), [("pear".into(), 1)]);
        Ok(())
    }

    #[test]
    fn removing_an_item_not_counted_fails_the_element() {
        let mut h = ProcessHarness::new(&PLUGIN, "map_state_demo");
        let error = h.process("alice", remove("kiwi"), None).expect_err("not counted");
        assert!(error.to_string().contains("cannot remove item `kiwi`"), "{error}");
        let error = h.process("alice", "not an item event", None).expect_err("does not decode");
        assert!(error.to_string().contains("does not decode as process_rust::items::ItemEvent"), "{error}");
        assert!(h.output::<ItemCounts>().is_empty());
    }
}
