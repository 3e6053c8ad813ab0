"""State a keyed process function declares, and the handles it uses it through.

A process function declares its state as class attributes, the way PyFlink code creates a
`ValueStateDescriptor` per state, but declaratively, so `describe` can list every state
(name, kind, value type, TTL) without running the function::

    @weir.process
    class CountPerKey(weir.KeyedProcessFunction):
        count = weir.ValueState(int)                   # state "count", the attribute's name
        seen = weir.ListState(str, ttl_ms=3_600_000)   # entries expire an hour after their write
        per_item = weir.MapState(str, int)
        rules = weir.BroadcastMapState(str, dict)      # written by process_broadcast_element

        def process_element(self, value, ctx):
            n = (self.count.value() or 0) + 1
            self.count.update(n)
            yield {"key": ctx.get_current_key(), "count": n}

Reading `self.count` while the function handles an element or a timer gives the handle of
that state *for the current key*: `value()/update()/clear()` for value state,
`get()/add()/add_all()/update()/clear()` for lists, `get/put/remove/contains/items/keys/
values/is_empty/clear` for maps. The host keeps the state, scoped to the key, in its state
store (checkpointed, handed to the next version of the plugin).

**Value state travels with the call** (ABI 0.2): `process-elements` and `on-timers` carry
every declared value state of the call's keys (`key-state`: input `i` has key slot
`slots[i]`, `values[slot * n + s]` is the `s`-th declared state of that slot). Value handles
read and write that copy, so a function over value state makes no call into the host per
element; the writes go back with the output (`state-writes`, the last write per key slot and
state). List, map and broadcast state and timers stay behind the host's imports.

**Values and map keys** cross as CPython `marshal` bytes, format version 2 (one value each):
the function's row encoding, `python-marshal`, as the WIT says state values are; the host
stores them as opaque bytes. So they are plain data, as rows are: None, bool, int, float,
str, bytes, list, tuple, dict (nested as you like; an `OrderedDict` or an `IntEnum` is stored
as the plain type). Map keys compare by those bytes: `1`, `1.0` and `True` are three keys.
The Rust SDK stores MessagePack instead, so state does not move between a Rust and a Python
version of a plugin (their declared value types differ anyway).

**Writes are the element's own until it returns**: `weir._process` gives each element (or
timer) a `Scope` that buffers its list, map and broadcast writes and timer changes (reads
see them) and logs its value writes (made in the call's copy, so reads and later elements
of the key see them), and hands them on only when the element succeeded. An element that
raises changes nothing: its value writes are undone in the copy and never returned.
"""

from __future__ import annotations

import marshal
import typing
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ._functions import WeirError
from ._marshal_codec import _plain

_dumps = marshal.dumps
_loads = marshal.loads

#: The marshal format of state values (no back-references; see `weir._marshal_codec`).
VERSION = 2


class StateError(WeirError):
    """A state call failed: a state used outside an element, a write the side handling the
    input may not make, a value that cannot be stored, or the host's refusal. Raised inside
    the user's method, it fails that element alone."""


# --- declarations -------------------------------------------------------------------------

#: Declared types `update` checks values against (`int` also passes for `float`). Other
#: annotations (generics, TypedDicts, classes) are reported by `describe` and not checked.
_CHECKED = (bool, int, float, str, bytes, list, tuple, dict)


def type_name(t: Any) -> str:
    """How `describe` reports a declared type: `int`, `dict[str, float]`, `app.Rule`."""
    if isinstance(t, str):
        return t
    if t is Any:
        return "Any"
    if isinstance(t, type) and not typing.get_args(t):
        if t.__module__ == "builtins":
            return t.__qualname__
        return f"{t.__module__}.{t.__qualname__}"
    return repr(t).replace("typing.", "")


class StateDecl:
    """A declared state (see the module doc); subclasses name the kind. The state's name is
    the class attribute's, unless `name=` gives another (to keep the state of a renamed
    attribute)."""

    kind = ""

    def __init__(self, value_type: Any = Any, *, key_type: Any = None, ttl_ms: Optional[int] = None,
                 name: Optional[str] = None):
        if ttl_ms is not None and (type(ttl_ms) is not int or ttl_ms <= 0):
            raise WeirError(f"ttl_ms must be a positive int of milliseconds or None, got {ttl_ms!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise WeirError(f"a state name must be a non-empty string, got {name!r}")
        self.name: str = name or ""
        self.value_type = value_type
        self.key_type = key_type
        self.ttl_ms = ttl_ms

    def __set_name__(self, owner: type, attribute: str) -> None:
        if not self.name:
            self.name = attribute

    def __get__(self, instance: Any, owner: Optional[type] = None) -> Any:
        # Reached only for an instance without this state's handle in its __dict__ (the
        # decorator puts the handles there, so the common lookup is a plain attribute).
        if instance is None:
            return self
        raise StateError(
            f"state `{self.name}` of {type(instance).__qualname__} is only available while the function handles "
            "an element or a timer (through the host or weir.testing.ProcessHarness)"
        )

    def describe(self) -> Dict[str, Any]:
        """The WIT `state-decl` as plain data."""
        value = type_name(self.value_type)
        shown = f"{type_name(self.key_type)} -> {value}" if self.kind in ("map", "broadcast-map") else value
        return {"name": self.name, "kind": self.kind, "value_type": shown, "ttl_ms": self.ttl_ms}

    def check_value(self, value: Any) -> None:
        """Refuse a value of another type than a declared plain type (`int` passes for `float`)."""
        t = self.value_type
        if t in _CHECKED and not isinstance(value, t) and not (t is float and type(value) is int):
            raise StateError(
                f"{self.kind} state `{self.name}` is declared with values of type {t.__name__}, got "
                f"{type(value).__name__} {value!r:.80}"
            )

    def __repr__(self) -> str:
        d = self.describe()
        ttl = f", ttl_ms={self.ttl_ms}" if self.ttl_ms is not None else ""
        return f"weir.{type(self).__name__}({d['value_type']}{ttl}, name={self.name!r})"


class ValueState(StateDecl):
    """One value per key (PyFlink's `ValueStateDescriptor`): `ValueState(int, ttl_ms=None)`."""

    kind = "value"


class ListState(StateDecl):
    """A list of values per key, appended to (PyFlink's `ListStateDescriptor`): `ListState(str)`."""

    kind = "list"


class MapState(StateDecl):
    """A map per key (PyFlink's `MapStateDescriptor`): `MapState(str, int)`, keys then values."""

    kind = "map"

    def __init__(self, key_type: Any = Any, value_type: Any = Any, *, ttl_ms: Optional[int] = None,
                 name: Optional[str] = None):
        super().__init__(value_type, key_type=key_type, ttl_ms=ttl_ms, name=name)


class BroadcastMapState(MapState):
    """A map that is not keyed (Flink's broadcast state): written by
    `process_broadcast_element`, read by every key's elements and timers. No TTL: every
    parallel instance must hold the same entries."""

    kind = "broadcast-map"

    def __init__(self, key_type: Any = Any, value_type: Any = Any, *, name: Optional[str] = None):
        super().__init__(key_type, value_type, name=name)


#: Attribute of a registered process function instance that holds its `Scope`.
SCOPE_ATTR = "__weir_scope__"


def bind(instance: Any, scope: "Scope", states: Iterable[StateDecl]) -> None:
    """Give a registered instance its scope and, under each state's attribute, its handle."""
    attributes = vars(instance)
    attributes[SCOPE_ATTR] = scope
    for klass in type(instance).__mro__:
        for attribute, value in vars(klass).items():
            if isinstance(value, StateDecl) and attribute not in attributes:
                attributes[attribute] = scope.handles[value.name]


def refuse_assignment(instance: Any, attribute: str) -> None:
    """`self.count = 5` on a declared state would replace its handle: refuse it."""
    if isinstance(getattr(type(instance), attribute, None), StateDecl):
        raise AttributeError(
            f"`{attribute}` is declared state; change it through its handle (e.g. self.{attribute}.update(value)), "
            "not by assigning the attribute"
        )


def declared_states(cls: type) -> List[StateDecl]:
    """The states class `cls` declares (its own and its bases'), in definition order, or
    `WeirError` for two states of one name."""
    found: Dict[str, StateDecl] = {}
    for klass in reversed(cls.__mro__):
        for attribute, value in vars(klass).items():
            if isinstance(value, StateDecl):
                found[attribute] = value
    states: List[StateDecl] = []
    for decl in found.values():
        twin = next((s for s in states if s.name == decl.name), None)
        if twin is not None:
            raise WeirError(
                f"{cls.__qualname__} declares two states named `{decl.name}`; give each state its own name"
            )
        states.append(decl)
    return states


# --- encoding -----------------------------------------------------------------------------


def encode(decl: StateDecl, value: Any, what: str = "value") -> bytes:
    """`value` as state bytes, or `StateError` naming the state."""
    try:
        return _dumps(value, VERSION)
    except ValueError:  # a subclass (OrderedDict, IntEnum) or a type marshal cannot write
        try:
            return _dumps(_plain(value), VERSION)
        except Exception as exc:  # noqa: BLE001
            raise StateError(
                f"cannot store {type(value).__name__} {value!r:.80} as a {what} of {decl.kind} state `{decl.name}`: "
                f"{exc} (state holds plain data: None, bool, int, float, str, bytes, list, tuple, dict)"
            ) from None


def decode(decl: StateDecl, data: bytes, what: str = "value") -> Any:
    """State bytes back to a value, or `StateError` (bytes another SDK wrote, e.g. MessagePack)."""
    try:
        return _loads(data)
    except Exception as exc:  # noqa: BLE001 - EOFError, ValueError, TypeError
        raise StateError(
            f"a stored {what} of {decl.kind} state `{decl.name}` does not decode as python-marshal ({exc}); "
            "was it written by another plugin (the Rust SDK stores MessagePack) under the same step name?"
        ) from None


# --- the scope of one input ---------------------------------------------------------------

KEYED = "keyed"
BROADCAST = "broadcast"


class Scope:
    """What the handles of one process function reach while it handles one input: the host,
    the call's copy of the keys' value state, and that input's buffered writes (see the
    module doc). `weir._process` opens it per call (`begin_call`) and per input (sets
    `side`), then `commit`s or `discard`s each input, and ends the call (`end_call`)."""

    def __init__(self, function: str, states: Iterable[StateDecl]):
        self.function = function
        declared = list(states)
        self.states: Dict[str, StateDecl] = {s.name: s for s in declared}
        #: How many states the function declares: the stride of `cells` per key slot.
        self.width = len(declared)
        self.handles: Dict[str, Any] = {d.name: _HANDLES[d.kind](self, d, i) for i, d in enumerate(declared)}
        self.host: Any = None
        #: KEYED (an element or a timer), BROADCAST, or None outside an input.
        self.side: Optional[str] = None
        #: The call's key-state values (`values[slot * width + state]`), written in place.
        self.cells: List[Optional[bytes]] = []
        #: `slot * width` of the current input's key.
        self.base = 0
        #: The current input's value writes: (position in `cells`, the value before).
        self.undo: List[Tuple[int, Optional[bytes]]] = []
        #: Positions in `cells` that succeeded inputs wrote (in first-write order).
        self.dirty: Dict[int, None] = {}
        #: list name -> (cleared first, appended values)
        self.lists: Dict[str, Tuple[bool, List[bytes]]] = {}
        #: map name -> user key bytes -> value bytes, or None when removed
        self.maps: Dict[str, Dict[bytes, Optional[bytes]]] = {}
        self.broadcast: Dict[str, Dict[bytes, Optional[bytes]]] = {}
        #: (register?, event time?, at) in call order
        self.timers: List[Tuple[bool, bool, int]] = []
        #: The current input's side-output rows: (tag, row bytes).
        self.side_rows: List[Tuple[str, bytes]] = []

    def handle(self, name: str) -> Any:
        """The handle of the declared state `name`, or `StateError` listing the declared ones."""
        try:
            return self.handles[name]
        except KeyError:
            declared = ", ".join(self.states) or "none"
            raise StateError(
                f"process function `{self.function}` used state `{name}`, which it does not declare "
                f"(declared: {declared}); declare it as a class attribute, e.g. `{name} = weir.ValueState(int)`"
            ) from None

    def begin_call(self, host: Any, cells: List[Optional[bytes]]) -> None:
        """Start a call over the keys whose value states are `cells` (written in place)."""
        self.undo = []  # a call that failed as a whole may have left some (its copy is gone)
        self.discard()
        self.host = host
        self.cells = cells
        self.base = 0
        self.dirty = {}

    def end_call(self) -> List[Tuple[int, int, Optional[bytes]]]:
        """End the call: its value writes as `(slot, state, value or None to clear)`, one
        per written slot and state, the last value."""
        width, cells = self.width, self.cells
        writes = [(pos // width, pos % width, cells[pos]) for pos in self.dirty]
        self.cells, self.dirty, self.side = [], {}, None
        return writes

    def discard(self) -> None:
        """Forget the input's writes (it failed, or they went to the host) and close the scope."""
        self.side = None
        if self.undo:
            cells = self.cells
            for pos, before in reversed(self.undo):
                cells[pos] = before
            self.undo = []
        if self.lists:
            self.lists = {}
        if self.maps:
            self.maps = {}
        if self.broadcast:
            self.broadcast = {}
        if self.timers:
            self.timers = []
        if self.side_rows:
            self.side_rows = []

    def commit(self) -> None:
        """Keep the input's value writes for the call's output, hand its other writes to the
        host, and close the scope. A host error here leaves some writes made: the caller
        fails the whole call, so the host rolls it back."""
        host = self.host
        self.side = None
        if self.undo:
            dirty = self.dirty
            for pos, _ in self.undo:
                dirty[pos] = None
            self.undo = []
        try:
            if self.lists:
                for name, (cleared, appended) in self.lists.items():
                    if cleared:
                        host.list_clear(name)
                    for value in appended:
                        host.list_append(name, value)
            if self.maps:
                for name, entries in self.maps.items():
                    for key, value in entries.items():
                        if value is None:
                            host.map_remove(name, key)
                        else:
                            host.map_put(name, key, value)
            if self.broadcast:
                for name, entries in self.broadcast.items():
                    for key, value in entries.items():
                        if value is None:
                            host.broadcast_remove(name, key)
                        else:
                            host.broadcast_put(name, key, value)
            for register, event_time, at in self.timers:
                if register:
                    host.register_timer(event_time, at)
                else:
                    host.delete_timer(event_time, at)
        finally:
            self.discard()

    def keyed(self, decl: StateDecl) -> None:
        """Refuse keyed state outside an element or timer of a key."""
        if self.side is KEYED:
            return
        if self.side is BROADCAST:
            raise StateError(
                f"{decl.kind} state `{decl.name}` is keyed state: process_broadcast_element has no key, so it "
                "can use only broadcast state"
            )
        raise StateError(f"state `{decl.name}` is only available while the function handles an element or a timer")

    def readable(self, decl: StateDecl) -> None:
        if self.side is None:
            raise StateError(f"state `{decl.name}` is only available while the function handles an input")

    def writable_broadcast(self, decl: StateDecl) -> None:
        if self.side is not BROADCAST:
            self.readable(decl)
            raise StateError(
                f"broadcast state `{decl.name}` is read-only here: only process_broadcast_element may write it"
            )


# --- handles ------------------------------------------------------------------------------


class _Handle:
    __slots__ = ("_scope", "_decl", "_name", "_index")

    def __init__(self, scope: Scope, decl: StateDecl, index: int):
        self._scope = scope
        self._decl = decl
        self._name = decl.name
        #: The state's position among the declared ones (its index in `key-state`).
        self._index = index

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r} of process function {self._scope.function!r}>"


class ValueStateHandle(_Handle):
    """The value state of the current key (PyFlink's `ValueState`), over the call's copy of
    the key's value (no call into the host)."""

    __slots__ = ()

    def value(self) -> Any:
        """The key's value, or None when it has none (never written, cleared or expired)."""
        scope = self._scope
        if scope.side is not KEYED:
            scope.keyed(self._decl)
        data = scope.cells[scope.base + self._index]
        return None if data is None else decode(self._decl, data)

    def update(self, value: Any) -> None:
        """Set the key's value; `update(None)` clears it (as Flink's `update(null)` does)."""
        scope = self._scope
        decl = self._decl
        if scope.side is not KEYED:
            scope.keyed(decl)
        if value is None:
            data = None
        else:
            decl.check_value(value)
            data = encode(decl, value)
        # Written in the call's copy, with the value before in the input's undo log.
        pos = scope.base + self._index
        cells = scope.cells
        scope.undo.append((pos, cells[pos]))
        cells[pos] = data

    def clear(self) -> None:
        self.update(None)


class ListStateHandle(_Handle):
    """The list state of the current key (PyFlink's `ListState`), in append order."""

    __slots__ = ()

    def get(self) -> List[Any]:
        """Every element (a new list; changing it changes nothing stored)."""
        scope = self._scope
        scope.keyed(self._decl)
        cleared, appended = scope.lists.get(self._name, (False, []))
        stored = [] if cleared else scope.host.list_get(self._name)
        decl = self._decl
        return [decode(decl, data, "element") for data in (stored + appended if appended else stored)]

    def add(self, value: Any) -> None:
        """Append one element."""
        self.add_all([value])

    def add_all(self, values: Iterable[Any]) -> None:
        scope = self._scope
        decl = self._decl
        scope.keyed(decl)
        encoded = []
        for value in values:
            decl.check_value(value)
            encoded.append(encode(decl, value, "element"))
        cleared, appended = scope.lists.get(self._name, (False, []))
        scope.lists[self._name] = (cleared, appended + encoded)

    def update(self, values: Iterable[Any]) -> None:
        """Replace every element with `values`."""
        self.clear()
        self.add_all(values)

    def clear(self) -> None:
        scope = self._scope
        scope.keyed(self._decl)
        scope.lists[self._name] = (True, [])


class _MapBase(_Handle):
    __slots__ = ()

    def _pending(self) -> Dict[bytes, Optional[bytes]]:
        raise NotImplementedError

    def _stored_get(self, key: bytes) -> Optional[bytes]:
        raise NotImplementedError

    def _stored_entries(self) -> List[Tuple[bytes, bytes]]:
        raise NotImplementedError

    def _check_read(self) -> None:
        raise NotImplementedError

    def _check_write(self) -> None:
        raise NotImplementedError

    def _key(self, key: Any) -> bytes:
        return encode(self._decl, key, "key")

    def get(self, key: Any, default: Any = None) -> Any:
        """The value at `key`, or `default` (None) when there is none."""
        self._check_read()
        k = self._key(key)
        pending = self._pending()
        data = pending[k] if k in pending else self._stored_get(k)
        return default if data is None else decode(self._decl, data)

    def contains(self, key: Any) -> bool:
        self._check_read()
        k = self._key(key)
        pending = self._pending()
        if k in pending:
            return pending[k] is not None
        return self._stored_get(k) is not None

    __contains__ = contains

    def _entries(self) -> List[Tuple[bytes, bytes]]:
        """Stored entries with this input's writes applied, ordered by key bytes (as the host)."""
        self._check_read()
        pending = self._pending()
        entries = self._stored_entries()
        if not pending:
            return entries
        merged = dict(entries)
        merged.update(pending)
        return sorted((k, v) for k, v in merged.items() if v is not None)

    def items(self) -> List[Tuple[Any, Any]]:
        """Every `(key, value)`, ordered by the keys' encoded bytes."""
        decl = self._decl
        return [(decode(decl, k, "key"), decode(decl, v)) for k, v in self._entries()]

    def keys(self) -> List[Any]:
        return [decode(self._decl, k, "key") for k, _ in self._entries()]

    def values(self) -> List[Any]:
        return [decode(self._decl, v) for _, v in self._entries()]

    def is_empty(self) -> bool:
        return not self._entries()

    def put(self, key: Any, value: Any) -> None:
        self._check_write()
        self._decl.check_value(value)
        self._pending()[self._key(key)] = encode(self._decl, value)

    def put_all(self, entries: Dict[Any, Any]) -> None:
        for key, value in entries.items():
            self.put(key, value)

    def remove(self, key: Any) -> None:
        """Remove `key`'s entry (no-op when there is none)."""
        self._check_write()
        self._pending()[self._key(key)] = None

    def clear(self) -> None:
        """Remove every entry."""
        self._check_write()
        pending = self._pending()
        for k, _ in self._stored_entries():
            pending[k] = None
        for k in pending:
            pending[k] = None


class MapStateHandle(_MapBase):
    """The map state of the current key (PyFlink's `MapState`)."""

    __slots__ = ()

    def _pending(self) -> Dict[bytes, Optional[bytes]]:
        return self._scope.maps.setdefault(self._name, {})

    def _stored_get(self, key: bytes) -> Optional[bytes]:
        return self._scope.host.map_get(self._name, key)

    def _stored_entries(self) -> List[Tuple[bytes, bytes]]:
        return list(self._scope.host.map_entries(self._name))

    def _check_read(self) -> None:
        self._scope.keyed(self._decl)

    _check_write = _check_read


class BroadcastStateHandle(_MapBase):
    """Broadcast state (PyFlink's `BroadcastState`): read by every key's elements and timers,
    written only in `process_broadcast_element`."""

    __slots__ = ()

    def _pending(self) -> Dict[bytes, Optional[bytes]]:
        return self._scope.broadcast.setdefault(self._name, {})

    def _stored_get(self, key: bytes) -> Optional[bytes]:
        return self._scope.host.broadcast_get(self._name, key)

    def _stored_entries(self) -> List[Tuple[bytes, bytes]]:
        return list(self._scope.host.broadcast_entries(self._name))

    def _check_read(self) -> None:
        self._scope.readable(self._decl)

    def _check_write(self) -> None:
        self._scope.writable_broadcast(self._decl)


_HANDLES = {
    "value": ValueStateHandle,
    "list": ListStateHandle,
    "map": MapStateHandle,
    "broadcast-map": BroadcastStateHandle,
}
