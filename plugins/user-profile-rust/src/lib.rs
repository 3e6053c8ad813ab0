//! Weir example plugin `user-profile`: the seed's real-time user profile.
//!
//! Behaviour events (`view`, `cart`, `purchase` of an item in a category) are keyed by user.
//! The broadcast side loads every user's base information (name, city, segment) into
//! broadcast map state `users`; the keyed side keeps each user's activity (value state, kept
//! for 30 days after the last event) and events per category (map state), and emits the
//! user's updated [`Profile`] after every event: the activity joined with the base
//! information, or with none for a user the broadcast side has not seen.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir::process::{BroadcastContext, Collector, Context, KeyedProcessFunction, ProcessResult, StateDecl};

/// What a user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    View,
    Cart,
    Purchase,
}

/// An element of the keyed stream. Purchases carry a price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub user_id: String,
    pub action: Action,
    pub category: String,
    #[serde(default)]
    pub price: Option<f64>,
}

/// An element of the broadcast stream: a user's base information.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub user_id: String,
    pub name: String,
    pub city: String,
    pub segment: String,
}

/// A user's activity so far (value state `activity`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub views: u64,
    pub carts: u64,
    pub purchases: u64,
    pub spent: f64,
    /// Event time of the latest event, if events have event time.
    pub last_seen: Option<i64>,
}

/// The output: a user's profile after an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub user_id: String,
    pub name: Option<String>,
    pub city: Option<String>,
    pub segment: Option<String>,
    pub views: u64,
    pub carts: u64,
    pub purchases: u64,
    pub spent: f64,
    /// The category with the most events (the first by name on a tie).
    pub favourite_category: String,
    pub last_seen: Option<i64>,
}

/// Activity not updated for this long is dropped: the user starts a new profile.
pub const ACTIVITY_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// See the module docs.
#[derive(Debug, Default)]
pub struct UserProfile;

impl KeyedProcessFunction for UserProfile {
    type Input = Event;
    type Output = Profile;
    type Broadcast = User;
    const STATES: &'static [StateDecl] = &[
        StateDecl::value::<Activity>("activity").with_ttl(ACTIVITY_TTL),
        StateDecl::map::<String, u64>("categories"),
        StateDecl::broadcast_map::<String, User>("users"),
    ];

    fn process_element(&mut self, event: Event, ctx: &Context<'_>, out: &mut Collector<'_, Profile>) -> ProcessResult {
        let state = ctx.value::<Activity>("activity")?;
        let mut activity = state.get()?.unwrap_or_default();
        match event.action {
            Action::View => activity.views += 1,
            Action::Cart => activity.carts += 1,
            Action::Purchase => {
                let price = event
                    .price
                    .filter(|p| p.is_finite() && *p >= 0.0)
                    .ok_or_else(|| format!("a purchase needs a price of 0 or more, found {:?}", event.price))?;
                activity.purchases += 1;
                activity.spent += price;
            }
        }
        activity.last_seen = ctx.timestamp().or(activity.last_seen);
        state.set(&activity)?;

        let categories = ctx.map::<String, u64>("categories")?;
        let seen = categories.get(&event.category)?.unwrap_or(0) + 1;
        categories.put(&event.category, &seen)?;
        // Entries come in the order of their encoded keys, not by name: break ties by name.
        let mut favourite = (String::new(), 0);
        for (category, n) in categories.entries()? {
            if n > favourite.1 || (n == favourite.1 && category < favourite.0) {
                favourite = (category, n);
            }
        }

        let user = ctx.broadcast::<String, User>("users")?.get(&event.user_id)?;
        out.collect(Profile {
            user_id: event.user_id,
            name: user.as_ref().map(|u| u.name.clone()),
            city: user.as_ref().map(|u| u.city.clone()),
            segment: user.map(|u| u.segment),
            views: activity.views,
            carts: activity.carts,
            purchases: activity.purchases,
            spent: activity.spent,
            favourite_category: favourite.0,
            last_seen: activity.last_seen,
        });
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        user: User,
        ctx: &BroadcastContext<'_>,
        _: &mut Collector<'_, Profile>,
    ) -> ProcessResult {
        if user.user_id.trim().is_empty() {
            return Err("a user needs a non-empty user_id".into());
        }
        ctx.broadcast::<String, User>("users")?.put(&user.user_id.clone(), &user)?;
        Ok(())
    }
}

weir::plugin! {
    name: "user-profile",
    version: "0.1.0",
    processes: [user_profile: UserProfile],
}

#[cfg(test)]
mod tests {
    use weir::testing::ProcessHarness;

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn event(user: &str, action: Action, category: &str, price: Option<f64>) -> Event {
        Event { user_id: user.into(), action, category: category.into(), price }
    }

    fn ana() -> User {
        User { user_id: "u1".into(), name: "Ana".into(), city: "Lisbon".into(), segment: "premium".into() }
    }

    fn harness() -> ProcessHarness {
        ProcessHarness::new(&PLUGIN, "user_profile")
    }

    #[test]
    fn a_known_users_events_build_an_enriched_profile() -> TestResult {
        let mut h = harness();
        h.broadcast(ana())?;
        h.process("u1", event("u1", Action::View, "books", None), 10)?;
        h.process("u1", event("u1", Action::View, "garden", None), 20)?;
        h.process("u1", event("u1", Action::Purchase, "garden", Some(12.5)), 30)?;
        let profiles = h.take_output::<Profile>();
        assert_eq!(profiles.len(), 3);
        // After the second view, books and garden tie at 1: books comes first by name.
        assert_eq!(profiles[1].favourite_category, "books");
        // A tie between names of other lengths (their encodings sort by length first).
        h.process("u2", event("u2", Action::View, "toys", None), 40)?;
        h.process("u2", event("u2", Action::View, "garden", None), 50)?;
        assert_eq!(h.take_output::<Profile>()[1].favourite_category, "garden");
        let last = &profiles[2];
        assert_eq!(
            (last.name.as_deref(), last.city.as_deref(), last.segment.as_deref()),
            (Some("Ana"), Some("Lisbon"), Some("premium"))
        );
        assert_eq!((last.views, last.carts, last.purchases, last.spent), (2, 0, 1, 12.5));
        assert_eq!((last.favourite_category.as_str(), last.last_seen), ("garden", Some(30)));
        Ok(())
    }

    #[test]
    fn an_unknown_user_gets_a_profile_without_base_information() -> TestResult {
        let mut h = harness();
        h.broadcast(ana())?;
        h.process("u9", event("u9", Action::Cart, "toys", None), 5)?;
        let profile = &h.take_output::<Profile>()[0];
        assert_eq!((profile.name.as_ref(), profile.carts), (None, 1));
        Ok(())
    }

    #[test]
    fn a_purchase_without_a_price_fails_and_changes_nothing() -> TestResult {
        let mut h = harness();
        let error = h.process("u1", event("u1", Action::Purchase, "books", None), 1).expect_err("no price");
        assert!(error.to_string().contains("a purchase needs a price"), "{error}");
        assert_eq!(h.value_state::<Activity>("u1", "activity"), None);
        Ok(())
    }

    #[test]
    fn a_user_without_an_id_is_refused() {
        let mut h = harness();
        let nobody = User { user_id: " ".into(), ..ana() };
        assert!(h.broadcast(nobody).is_err());
    }
}
