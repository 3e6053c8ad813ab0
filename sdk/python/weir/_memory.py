"""In-memory keyed state, broadcast state and timers with the host's semantics: the
`ProcessHost` of `weir.testing.ProcessHarness` (the component's is `WitProcessHost`, over
the WIT imports), and the host's part of batched value state (`key_state` before a call,
`apply_writes` after it).

What the host does and this mirrors:
- State is scoped to the key of the selected input; a call on a state the function did not
  declare, or of another kind, is refused with the host's wording.
- Value state travels with the call: before it, every declared value state of the call's
  distinct keys (in order of first appearance) is read into `key-state`; after it, the
  returned writes are applied in order, and a write to a slot or state that does not exist
  (or is not a value state) fails them all.
- TTL is processing time since the last write; an expired value, list element or map entry
  reads as absent and is dropped when read.
- Map and broadcast entries are ordered by their keys' bytes.
- A timer is one per key, clock and time, however often it is registered; due timers fire
  in time order, then key order (the host orders equal times by key group first).
- Broadcast state is written only while handling the broadcast stream, which has no key.

`snapshot`/`restore` are what the host's rollback of a failed call does.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from ._state import StateDecl, StateError

#: (processing time of the write, bytes)
Stamped = Tuple[int, bytes]


class MemoryHost:
    """See the module doc. `operator` names the function in refusals, as the host names the step."""

    def __init__(self, operator: str, states: Iterable[StateDecl]):
        self.operator = operator
        self.declared: Dict[str, StateDecl] = {s.name: s for s in states}
        #: key bytes -> state name -> a value (Stamped), a list of Stamped, or a dict of Stamped
        self.keyed: Dict[bytes, Dict[str, Any]] = {}
        self.broadcast: Dict[str, Dict[bytes, bytes]] = {}
        #: event time? -> {(time, key bytes)}
        self.timers: Dict[bool, Set[Tuple[int, bytes]]] = {True: set(), False: set()}
        self.watermark: Optional[int] = None
        self.processing_time = 0
        self._keys: Optional[List[bytes]] = None  # the inputs' keys of a keyed call, else None
        self._selected: Optional[int] = None

    # --- the harness's side -------------------------------------------------------------

    def begin_keyed(self, keys: List[bytes]) -> None:
        self._keys, self._selected = keys, None

    def begin_broadcast(self) -> None:
        self._keys, self._selected = None, None

    #: After a call nothing is selected (and no state is reachable from the tests' side).
    end_call = begin_broadcast

    def snapshot(self) -> Any:
        return copy.deepcopy((self.keyed, self.broadcast, self.timers))

    def restore(self, snapshot: Any) -> None:
        self.keyed, self.broadcast, self.timers = snapshot

    def pop_due(self, event_time: bool, up_to: int) -> List[Tuple[int, bytes]]:
        """Remove and return the timers of one clock at or before `up_to`, by time then key."""
        due = sorted(t for t in self.timers[event_time] if t[0] <= up_to)
        self.timers[event_time].difference_update(due)
        return due

    # --- the ProcessHost interface ------------------------------------------------------

    def select(self, index: int) -> None:
        self._selected = index

    def current_watermark(self) -> Optional[int]:
        return self.watermark

    def current_processing_time(self) -> int:
        return self.processing_time

    def _refuse(self, message: str) -> StateError:
        return StateError(f"operator `{self.operator}` {message}")

    def _key(self, what: str) -> bytes:
        if self._keys is None or self._selected is None:
            raise self._refuse(
                f"used {what} with no current key; keyed state and timers can only be used while an element or a "
                "timer of a key is handled"
            )
        if not 0 <= self._selected < len(self._keys):
            raise self._refuse(f"select({self._selected}) names no input of this call")
        return self._keys[self._selected]

    def _declared(self, name: str, kind: str) -> Optional[int]:
        """The TTL of declared state `name` of kind `kind`, or the host's refusal."""
        decl = self.declared.get(name)
        if decl is None:
            names = ", ".join(self.declared) or "none"
            raise self._refuse(
                f"used state `{name}`, which it did not declare (declared: {names}); declare every state in the "
                "plugin's describe() before using it"
            )
        if decl.kind != kind:
            raise self._refuse(
                f"declared `{name}` as {decl.kind} state but used it as {kind} state; use the {decl.kind} state "
                f"calls, or declare it as {kind} state under another name"
            )
        return decl.ttl_ms

    def _live(self, stamped: Stamped, ttl: Optional[int]) -> bool:
        return ttl is None or self.processing_time < stamped[0] + ttl

    def _slots(self, name: str, kind: str) -> Tuple[Dict[str, Any], Optional[int]]:
        ttl = self._declared(name, kind)
        return self.keyed.setdefault(self._key(f"state `{name}`"), {}), ttl

    def _tidy(self) -> None:
        key = self._key("state")
        if not self.keyed.get(key):
            self.keyed.pop(key, None)

    # --- batched value state (the host's side of `key-state` and `state-writes`) --------

    def key_state(self, keys: List[bytes]) -> Tuple[List[int], List[Optional[bytes]], List[bytes]]:
        """`(slots, values, distinct keys)` of a call over inputs with keys `keys`: input `i`
        has slot `slots[i]`, and `values[slot * n + s]` is the `s`-th declared state of that
        slot's key (None unset, expired or not a value state)."""
        distinct: Dict[bytes, int] = {}
        slots = [distinct.setdefault(k, len(distinct)) for k in keys]
        values: List[Optional[bytes]] = []
        for key in distinct:
            for decl in self.declared.values():
                values.append(self._value(key, decl.name) if decl.kind == "value" else None)
        return slots, values, list(distinct)

    def apply_writes(self, keys: List[bytes], writes: Iterable[Tuple[int, int, Optional[bytes]]]) -> None:
        """Apply a call's value writes in order (`keys` are the call's distinct keys, by slot);
        `StateError` before any is applied when one names no slot or no value state."""
        writes = list(writes)
        decls = list(self.declared.values())
        for slot, state, _ in writes:
            if not 0 <= slot < len(keys):
                raise self._refuse(f"the plugin returned a bad state write: key slot {slot} of {len(keys)}")
            if not 0 <= state < len(decls):
                raise self._refuse(f"the plugin returned a bad state write: state {state} of {len(decls)}")
            if decls[state].kind != "value":
                raise self._refuse(f"the plugin returned a bad state write: state `{decls[state].name}` is not a value state")
        for slot, state, value in writes:
            key, name = keys[slot], decls[state].name
            if value is None:
                slots = self.keyed.get(key)
                if slots is not None:
                    slots.pop(name, None)
                    if not slots:
                        del self.keyed[key]
            else:
                self.keyed.setdefault(key, {})[name] = (self.processing_time, bytes(value))

    def _value(self, key: bytes, name: str) -> Optional[bytes]:
        """Value state `name` of `key` (dropped when expired)."""
        slots = self.keyed.get(key)
        stamped = slots.get(name) if slots else None
        if stamped is None:
            return None
        if not self._live(stamped, self.declared[name].ttl_ms):
            del slots[name]
            if not slots:
                del self.keyed[key]
            return None
        return stamped[1]

    # --- state behind imports -----------------------------------------------------------

    def list_get(self, name: str) -> List[bytes]:
        slots, ttl = self._slots(name, "list")
        items = [s for s in slots.get(name, []) if self._live(s, ttl)]
        if items:
            slots[name] = items
        else:
            slots.pop(name, None)
        self._tidy()
        return [b for _, b in items]

    def list_append(self, name: str, value: bytes) -> None:
        slots, _ = self._slots(name, "list")
        slots.setdefault(name, []).append((self.processing_time, bytes(value)))

    def list_clear(self, name: str) -> None:
        slots, _ = self._slots(name, "list")
        slots.pop(name, None)
        self._tidy()

    def _map(self, name: str) -> Dict[bytes, Stamped]:
        slots, ttl = self._slots(name, "map")
        entries = {k: s for k, s in slots.get(name, {}).items() if self._live(s, ttl)}
        slots[name] = entries
        return entries

    def _map_done(self, name: str) -> None:
        slots = self.keyed.get(self._key("state"), {})
        if not slots.get(name, True):
            del slots[name]
        self._tidy()

    def map_get(self, name: str, key: bytes) -> Optional[bytes]:
        stamped = self._map(name).get(bytes(key))
        self._map_done(name)
        return None if stamped is None else stamped[1]

    def map_put(self, name: str, key: bytes, value: bytes) -> None:
        self._map(name)[bytes(key)] = (self.processing_time, bytes(value))

    def map_remove(self, name: str, key: bytes) -> None:
        self._map(name).pop(bytes(key), None)
        self._map_done(name)

    def map_contains(self, name: str, key: bytes) -> bool:
        return self.map_get(name, key) is not None

    def map_entries(self, name: str) -> List[Tuple[bytes, bytes]]:
        entries = sorted((k, s[1]) for k, s in self._map(name).items())
        self._map_done(name)
        return entries

    def _broadcast(self, name: str) -> Dict[bytes, bytes]:
        self._declared(name, "broadcast-map")
        return self.broadcast.setdefault(name, {})

    def _broadcast_write(self, name: str) -> Dict[bytes, bytes]:
        entries = self._broadcast(name)
        if self._keys is not None:
            raise StateError(
                f"broadcast state `{name}` is read-only here: only the broadcast side (process-broadcast) may write it"
            )
        return entries

    def broadcast_get(self, name: str, key: bytes) -> Optional[bytes]:
        return self._broadcast(name).get(bytes(key))

    def broadcast_put(self, name: str, key: bytes, value: bytes) -> None:
        self._broadcast_write(name)[bytes(key)] = bytes(value)

    def broadcast_remove(self, name: str, key: bytes) -> None:
        self._broadcast_write(name).pop(bytes(key), None)

    def broadcast_entries(self, name: str) -> List[Tuple[bytes, bytes]]:
        return sorted(self._broadcast(name).items())

    def register_timer(self, event_time: bool, at: int) -> None:
        self.timers[event_time].add((at, self._key("a timer")))

    def delete_timer(self, event_time: bool, at: int) -> None:
        self.timers[event_time].discard((at, self._key("a timer")))

    # --- inspection ---------------------------------------------------------------------

    def inspect(self, key: bytes, name: str, kind: str) -> Any:
        """State `name` of `key` as the function would read it (expired entries dropped)."""
        saved = self._keys, self._selected
        self._keys, self._selected = [key], 0
        try:
            if kind == "value":
                return self._value(key, name)
            if kind == "list":
                return self.list_get(name)
            return self.map_entries(name)
        finally:
            self._keys, self._selected = saved
