"""Weir example plugin `process-python`: keyed process functions in Python, the
counterparts of plugins/process-rust's (same names, same outputs on the same input).

| function | input | output | state |
|---|---|---|---|
| `count_per_key` | any element | `{key, count}` per element | value `count: int` |
| `sessionize` | any element with event time | `{key, start, end, events}` when the session closes | list `events`, value `timer: int` |
| `map_state_demo` | `{item, remove?}` | `{key, counts: {item: n}}` per element | map `counts: str -> int` |
| `fraud_detector` | `{account, amount}`; broadcast `{name, small, large}` | `{account, small, large}` alerts | value `flag: float`, value `timer`, broadcast map `rules` |
| `fail_on_boom` | any element | `{key, count}`, then an exception on an element containing `boom` | value `count: int` |
| `undeclared` | any element | fails: uses state `not_declared` | value `count: int` |
| `enrich_clicks` (co-process) | input 1: clicks; input 2: profiles | `{key, click, profile}` per click, once its key has a profile | value `profile: dict`, list `pending: dict` |
| `split_late` | any element with event time | `{key, event}`; side output `late`: `{key, event, lateness_ms}` | value `latest: int` |
| `latest_per_key` | any element | the key's latest element as an upsert changelog (insert, then update-before/update-after) | value `latest: Any` |
| `window_summary` (process window) | a fired window's elements | `{key, start, end, count, first_at, last_at}` | none |

Keys are whatever the job keys by (a string, a number), passed back as they came. The first
six have the same names and outputs as plugins/process-rust's; the last four use ABI 0.2's
co-process and process-window functions, side outputs and row kinds.
"""

from typing import Any, Dict, Iterator, List, Optional

import weir

weir.plugin(name="process-python", version="0.1.0")


@weir.process
class CountPerKey(weir.KeyedProcessFunction):
    """Counts the elements of each key (any element) and emits `{key, count}` for each."""

    count = weir.ValueState(int)

    def process_element(self, value: Any, ctx: weir.Context) -> Iterator[Dict[str, Any]]:
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        yield {"key": ctx.get_current_key(), "count": n}


#: A session closes when no element came for this long (event time, ms).
SESSION_GAP_MS = 30_000


@weir.process
class Sessionize(weir.KeyedProcessFunction):
    """Buffers each key's elements (list state `events`) and keeps one event-time timer at the
    latest element's time plus `SESSION_GAP_MS` (value state `timer`); when it fires, emits
    the session `{key, start, end, events}` (events in event-time order) and forgets it."""

    events = weir.ListState(dict)  # {"at": ms, "event": the element}
    timer = weir.ValueState(int)

    def process_element(self, value: Any, ctx: weir.Context) -> None:
        at = ctx.timestamp()
        if at is None:
            raise ValueError("sessionize needs event time: assign timestamps before it in the job")
        self.events.add({"at": at, "event": value})
        current = self.timer.value()
        # An element older than the session's latest one does not shorten it.
        close_at = at + SESSION_GAP_MS if current is None else max(current, at + SESSION_GAP_MS)
        if current != close_at:
            timers = ctx.timer_service()
            if current is not None:
                timers.delete_event_time_timer(current)
            timers.register_event_time_timer(close_at)
            self.timer.update(close_at)

    def on_timer(self, timestamp: int, ctx: weir.Context) -> Iterator[Dict[str, Any]]:
        if self.timer.value() != timestamp:
            return  # a deleted timer cannot fire; nothing else registers one
        buffered = sorted(self.events.get(), key=lambda e: e["at"])  # stable: ties keep arrival order
        if buffered:
            yield {
                "key": ctx.get_current_key(),
                "start": buffered[0]["at"],
                "end": buffered[-1]["at"],
                "events": [e["event"] for e in buffered],
            }
        self.events.clear()
        self.timer.clear()


@weir.process("map_state_demo")
class ItemCounts(weir.KeyedProcessFunction):
    """Counts items per key in map state `counts` and emits every count of the key after
    each element; removing an item the key has not counted fails the element."""

    counts = weir.MapState(str, int)

    def process_element(self, value: Dict[str, Any], ctx: weir.Context) -> Iterator[Dict[str, Any]]:
        item = value["item"]
        if value.get("remove"):
            if not self.counts.contains(item):
                raise KeyError(f"cannot remove item `{item}`: this key has not counted it")
            self.counts.remove(item)
        else:
            self.counts.put(item, self.counts.get(item, 0) + 1)
        yield {"key": ctx.get_current_key(), "counts": dict(self.counts.items())}


# --- Flink's fraud-detection walkthrough, with rules on a broadcast stream ----------------

#: Below this, a transaction is small (without a rule).
SMALL_AMOUNT = 1.00
#: Above this, a transaction is large (without a rule).
LARGE_AMOUNT = 500.00
#: How long after a small transaction a large one raises an alert.
ONE_MINUTE_MS = 60_000


@weir.process
class FraudDetector(weir.KeyedProcessFunction):
    """Transactions `{account, amount}` are keyed by account. A small one (below `small`)
    sets the account's `flag` (the small amount) and a timer a minute later; a large one
    (above `large`) while the flag is set emits the alert `{account, small, large}`. Any
    transaction after a small one clears the flag (a small one sets it again), and so does
    the timer. With event time the minute is event time, measured between the two
    transactions; without, it is processing time.

    The thresholds come from broadcast state `rules`: the rule named like the account, else
    the rule `default`, else the built-in ones. The broadcast side receives rules
    `{name, small, large}` and stores them."""

    flag = weir.ValueState(float)
    timer = weir.ValueState(dict)  # {"at": ms, "event_time": bool}: to delete it when the flag clears first
    rules = weir.BroadcastMapState(str, dict)  # name -> {"small": x, "large": y}

    def thresholds(self, account: Any) -> Dict[str, float]:
        own = account if isinstance(account, str) else str(account)
        rule = self.rules.get(own) or self.rules.get("default")
        return rule or {"small": SMALL_AMOUNT, "large": LARGE_AMOUNT}

    def clean_up(self, ctx: weir.Context, pending: Optional[Dict[str, Any]]) -> None:
        """Forget the flag and its timer."""
        if pending is not None:
            timers = ctx.timer_service()
            if pending["event_time"]:
                timers.delete_event_time_timer(pending["at"])
            else:
                timers.delete_processing_time_timer(pending["at"])
        self.timer.clear()
        self.flag.clear()

    def process_element(self, tx: Dict[str, Any], ctx: weir.Context) -> Iterator[Dict[str, Any]]:
        account, amount = tx["account"], tx["amount"]
        if not isinstance(amount, (int, float)) or isinstance(amount, bool):
            raise TypeError(f"amount must be a number, got {amount!r}")
        limits = self.thresholds(account)
        small = self.flag.value()
        if small is not None:
            pending = self.timer.value()
            at = ctx.timestamp()
            # Processing time: the timer clears the flag when the minute is up.
            within_a_minute = at < pending["at"] if pending and pending["event_time"] and at is not None else True
            if within_a_minute and amount > limits["large"]:
                yield {"account": account, "small": small, "large": amount}
            self.clean_up(ctx, pending)
        if amount < limits["small"]:
            timers = ctx.timer_service()
            at = ctx.timestamp()
            if at is not None:
                pending = {"at": at + ONE_MINUTE_MS, "event_time": True}
                timers.register_event_time_timer(pending["at"])
            else:
                pending = {"at": timers.current_processing_time() + ONE_MINUTE_MS, "event_time": False}
                timers.register_processing_time_timer(pending["at"])
            self.flag.update(float(amount))
            self.timer.update(pending)

    def on_timer(self, timestamp: int, ctx: weir.Context) -> None:
        self.timer.clear()
        self.flag.clear()

    def process_broadcast_element(self, rule: Dict[str, Any], ctx: weir.BroadcastContext) -> None:
        small, large = rule["small"], rule["large"]
        if not small <= large:  # NaN compares false both ways: refused too
            raise ValueError(f"rule `{rule['name']}`: small ({small}) must be a number not above large ({large})")
        self.rules.put(rule["name"], {"small": small, "large": large})


# --- functions that fail on purpose, for the host's failure paths -------------------------


def contains_boom(value: Any) -> bool:
    """Whether `boom` is in a string anywhere in `value` (a record's keys and values, a list's items)."""
    if isinstance(value, str):
        return "boom" in value
    if isinstance(value, dict):
        return any(contains_boom(k) or contains_boom(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(map(contains_boom, value))
    return False


@weir.process
class FailOnBoom(weir.KeyedProcessFunction):
    """Counts like `count_per_key` (writes `count`, emits `{key, count}`), then raises on an
    element containing `boom`: the element fails alone, and its write is dropped, so every
    other element counts exactly once."""

    count = weir.ValueState(int)

    def process_element(self, value: Any, ctx: weir.Context) -> Iterator[Dict[str, Any]]:
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        yield {"key": ctx.get_current_key(), "count": n}
        if contains_boom(value):
            raise RuntimeError(f"fail_on_boom: failing on purpose after writing count {n}")


@weir.process
class Undeclared(weir.KeyedProcessFunction):
    """Declares `count` but reads `not_declared`: every element fails with a message that
    names both."""

    count = weir.ValueState(int)

    def process_element(self, value: Any, ctx: weir.Context) -> Iterator[Any]:
        ctx.state("not_declared").value()
        yield value


# --- ABI 0.2: co-process, side outputs, row kinds, process windows -------------------------


@weir.co_process
class EnrichClicks(weir.KeyedCoProcessFunction):
    """Two streams keyed by user: clicks (input 1) and profile updates (input 2). A click
    emits `{key, click, profile}` with the key's latest profile; clicks that come before the
    key's first profile wait in list state `pending` and go out, in arrival order, when it
    comes. A later profile replaces the earlier one."""

    profile = weir.ValueState(dict)
    pending = weir.ListState(dict)

    def process_element1(self, click: Any, ctx: weir.Context) -> Iterator[Dict[str, Any]]:
        profile = self.profile.value()
        if profile is None:
            self.pending.add({"click": click})
            return
        yield {"key": ctx.get_current_key(), "click": click, "profile": profile}

    def process_element2(self, profile: Dict[str, Any], ctx: weir.Context) -> Iterator[Dict[str, Any]]:
        if not isinstance(profile, dict):
            raise TypeError(f"a profile is a record, got {type(profile).__name__}")
        first = self.profile.value() is None
        self.profile.update(profile)
        if first:
            key = ctx.get_current_key()
            for waiting in self.pending.get():
                yield {"key": key, "click": waiting["click"], "profile": profile}
            self.pending.clear()


#: Where `split_late` sends elements older than their key's latest.
LATE = weir.OutputTag("late")


@weir.process
class SplitLate(weir.KeyedProcessFunction):
    """Passes each element on as `{key, event}`, but one whose event time is before the
    latest its key has seen goes to the side output `late` as `{key, event, lateness_ms}`
    instead. Elements need event time."""

    latest = weir.ValueState(int)

    def process_element(self, value: Any, ctx: weir.Context) -> Iterator[Dict[str, Any]]:
        at = ctx.timestamp()
        if at is None:
            raise ValueError("split_late needs event time: assign timestamps before it in the job")
        latest = self.latest.value()
        if latest is not None and at < latest:
            ctx.output(LATE, {"key": ctx.get_current_key(), "event": value, "lateness_ms": latest - at})
            return
        self.latest.update(at)
        yield {"key": ctx.get_current_key(), "event": value}


@weir.process
class LatestPerKey(weir.KeyedProcessFunction):
    """The latest element of each key as an updating result (an upsert changelog): the first
    element of a key is an insert `{key, value}`; each later one withdraws the previous row
    (`UPDATE_BEFORE`) and adds the new one (`UPDATE_AFTER`); an element equal to the latest
    changes nothing. (The host's streams carry inserts only so far: run it where updates are
    read.)"""

    latest = weir.ValueState()

    def process_element(self, value: Any, ctx: weir.Context) -> Iterator[Any]:
        key = ctx.get_current_key()
        previous = self.latest.value()
        if previous is None:
            self.latest.update(value)
            yield {"key": key, "value": value}
        elif previous != value:
            self.latest.update(value)
            yield weir.Row({"key": key, "value": previous}, weir.RowKind.UPDATE_BEFORE)
            yield weir.Row({"key": key, "value": value}, weir.RowKind.UPDATE_AFTER)


@weir.process_window
def window_summary(key: Any, window: weir.TimeWindow, elements: List[Any], ctx: weir.WindowContext) -> Iterator[Dict[str, Any]]:
    """A fired window of a key: how many elements it holds and the first and last of their
    event times (None when none has one)."""
    times = [t for t in ctx.timestamps() if t is not None]
    yield {
        "key": key,
        "start": window.start,
        "end": window.end,
        "count": len(elements),
        "first_at": min(times) if times else None,
        "last_at": max(times) if times else None,
    }
