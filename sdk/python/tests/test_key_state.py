"""Batched value state (ABI 0.2): value state arrives with the call (`key-state`) and leaves
with the output (`state-writes`); no call into the host per element."""

import pytest

import weir
from weir import _marshal_codec as codec
from weir import _process
from weir._memory import MemoryHost
from weir.testing import ProcessHarness, ProcessHarnessError


@weir.process
class Tally(weir.KeyedProcessFunction):
    """Counts per key in `count`, remembers the last element in `last` (TTL 100 ms), and keeps a
    list state (for the stride: `values` hold every declared state). `boom` raises after
    writing; `reset` clears."""

    seen = weir.ListState(str)
    count = weir.ValueState(int)
    last = weir.ValueState(str, ttl_ms=100)

    def process_element(self, value, ctx):
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        previous = self.last.value()
        self.last.update(value)
        if value == "boom":
            raise RuntimeError("after writing")
        if value == "reset":
            self.count.clear()
            self.last.update(None)
        yield [ctx.get_current_key(), n, previous]


def rows(*values):
    return codec.join_rows([codec.encode_row(v) for v in values])


class NoImports(MemoryHost):
    """A host that fails the test on any import call but `select` (value state needs none)."""

    def __getattribute__(self, name):
        if name in ("list_get", "list_append", "map_get", "map_put", "broadcast_get", "register_timer"):
            raise AssertionError(f"import call {name}")
        return super().__getattribute__(name)


def call(values_in, elements, keys, slots):
    host = NoImports("tally", Tally.__weir__.states)
    data, offsets = rows(*elements)
    key_data, key_offsets = rows(*keys)
    return _process.process_elements(
        Tally.__weir__, host, 1, data, offsets, key_data, key_offsets, [0] * len(elements), slots, values_in
    )


def test_the_call_reads_the_copy_writes_it_in_place_and_returns_the_last_write_per_slot_and_state():
    # Slot 0 (key a) starts at count 5, last "z"; slot 1 (key b) has nothing.
    values = [None, codec.encode_row(5), codec.encode_row("z"), None, None, None]
    out = call(values, ["x", "y", "q", "w"], ["a", "b", "a", "a"], [0, 1, 0, 0])
    assert codec.unpack(out.data, out.offsets) == [["a", 6, "z"], ["b", 1, None], ["a", 7, "x"], ["a", 8, "q"]]
    assert out.state_writes == [
        (0, 1, codec.encode_row(8)),
        (0, 2, codec.encode_row("w")),
        (1, 1, codec.encode_row(1)),
        (1, 2, codec.encode_row("y")),
    ]
    assert (out.kinds, out.side) == ([], [])


def test_a_failed_element_undoes_its_writes_in_the_copy_and_returns_none_of_them():
    values = [None, codec.encode_row(1), None]
    out = call(values, ["boom", "ok"], ["a", "a"], [0, 0])
    assert out.counts == [0, 1]
    assert out.errors == [(0, "process function `tally`: RuntimeError: after writing")]
    assert codec.unpack(out.data, out.offsets) == [["a", 2, None]], "the second element saw the state before boom"
    assert out.state_writes == [(0, 1, codec.encode_row(2)), (0, 2, codec.encode_row("ok"))]
    only_boom = call([None, codec.encode_row(1), None], ["boom"], ["a"], [0])
    assert only_boom.state_writes == []


def test_clearing_returns_a_clear_and_update_none_is_a_clear():
    out = call([None, codec.encode_row(3), codec.encode_row("z")], ["reset"], ["a"], [0])
    assert out.state_writes == [(0, 1, None), (0, 2, None)]


def test_value_state_survives_across_calls_in_the_harness_with_its_ttl():
    h = ProcessHarness(Tally)
    h.process_batch([("a", "x", None), ("b", "y", None), ("a", "z", None)])
    assert h.take_output() == [["a", 1, None], ["b", 1, None], ["a", 2, "x"]]
    assert (h.value_state("a", "count"), h.value_state("a", "last"), h.value_state("b", "count")) == (2, "z", 1)
    h.advance_processing_time(99)
    h.process("a", "w")  # written at 99: lives until 199
    h.advance_processing_time(150)
    assert (h.value_state("a", "last"), h.value_state("b", "last")) == ("w", None), "b's was written at 0"
    h.process("b", "v")
    assert h.take_output() == [["a", 3, "z"], ["b", 2, None]]


def test_a_failed_element_keeps_no_write_and_the_others_of_its_key_count_once():
    h = ProcessHarness(Tally)
    with pytest.raises(ProcessHarnessError) as failed:
        h.process_batch([("a", "x", None), ("a", "boom", None), ("a", "y", None)])
    assert [f.input for f in failed.value.failures] == ["element 1"]
    assert h.output == [["a", 1, None], ["a", 2, "x"]]
    assert (h.value_state("a", "count"), h.value_state("a", "last")) == (2, "y")


def test_the_host_side_refuses_writes_to_slots_or_states_that_do_not_exist():
    host = MemoryHost("tally", Tally.__weir__.states)
    slots, values, keys = host.key_state([b"a", b"b", b"a"])
    assert (slots, values, keys) == ([0, 1, 0], [None] * 6, [b"a", b"b"])
    for write, message in [
        ((2, 1, b"x"), "key slot 2 of 2"),
        ((0, 3, b"x"), "state 3 of 3"),
        ((0, 0, b"x"), "state `seen` is not a value state"),
    ]:
        with pytest.raises(weir.StateError, match=message):
            host.apply_writes(keys, [(0, 1, b"i\x01\x00\x00\x00"), write])
        assert host.keyed == {}, "nothing applied"


def test_state_outside_an_input_and_on_the_broadcast_side_is_refused():
    with pytest.raises(weir.StateError, match="only available while the function handles an element or a timer"):
        Tally.__weir__.fn.count.value()
