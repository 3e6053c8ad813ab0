"""Side outputs (`ctx.output(tag, value)`) and row kinds (`weir.Row`, `weir.RowKind`) of
process functions, through the dispatcher and the harness."""

import pytest

import weir
from weir import _marshal_codec as codec
from weir import _process
from weir._memory import MemoryHost
from weir.testing import ProcessHarness, ProcessHarnessError

LATE = weir.OutputTag("late")


@weir.process
class Upsert(weir.KeyedProcessFunction):
    """Keeps each key's latest value: emits an insert the first time, then the old value as
    `UPDATE_BEFORE` and the new one as `UPDATE_AFTER`; `None` deletes. Elements older than
    the key's latest go to side output `late` (and `dup` for repeats, by name); `boom` raises
    after sending a side row."""

    latest = weir.ValueState(dict)

    def process_element(self, value, ctx):
        old = self.latest.value()
        if value is None:
            if old is not None:
                self.latest.clear()
                yield weir.Row(old, weir.RowKind.DELETE)
            return
        if old is not None and value["at"] < old["at"]:
            ctx.output(LATE, value)
            return
        if old == value:
            ctx.output("dup", value["at"])
        ctx.timer_service().register_event_time_timer(value["at"] + 10)
        if value.get("boom"):
            ctx.output(LATE, "never seen")
            raise ValueError("boom")
        self.latest.update(value)
        if old is None:
            yield value
        else:
            yield weir.Row(old, weir.RowKind.UPDATE_BEFORE)
            yield weir.Row(value, weir.RowKind.UPDATE_AFTER)

    def on_timer(self, timestamp, ctx):
        ctx.output("timers", [ctx.get_current_key(), timestamp])
        return None


def v(at, **more):
    return {"at": at, **more}


def test_row_kinds_and_side_outputs_in_the_harness():
    h = ProcessHarness(Upsert)
    h.process_batch([("a", v(1), None), ("a", v(2), None), ("a", v(0), None), ("b", v(5), None), ("a", v(2), None)])
    h.process("b", None)
    I, UB, UA, D = weir.RowKind.INSERT, weir.RowKind.UPDATE_BEFORE, weir.RowKind.UPDATE_AFTER, weir.RowKind.DELETE
    assert h.output_rows == [
        weir.Row(v(1), I),
        weir.Row(v(1), UB),
        weir.Row(v(2), UA),
        weir.Row(v(5)),
        weir.Row(v(2), UB),
        weir.Row(v(2), UA),
        weir.Row(v(5), D),
    ]
    assert h.output == [v(1), v(1), v(2), v(5), v(2), v(2), v(5)]
    assert h.side_output(LATE) == [v(0)]
    assert h.side_output("dup") == [2]
    assert h.side_output("nothing") == []
    h.advance_watermark(11)
    assert h.side_outputs == {"late": [v(0)], "dup": [2], "timers": [["a", 11]]}
    assert h.take_side_output("late") == [v(0)] and h.side_output("late") == []
    assert [r.kind.short_string() for r in h.take_output_rows()] == ["+I", "-U", "+U", "+I", "-U", "+U", "-D"]
    assert h.output_rows == []


def test_a_failed_element_drops_its_side_rows_with_its_output():
    h = ProcessHarness(Upsert)
    with pytest.raises(ProcessHarnessError, match="ValueError: boom"):
        h.process_batch([("a", v(1, boom=True), None), ("a", v(0), None)])
    assert h.side_outputs == {}, "the second element is not late: the first one's write is undone"
    assert h.output == [v(0)]


def test_the_dispatch_sends_kinds_only_when_a_row_is_not_an_insert_and_side_rows_by_input():
    host = MemoryHost("upsert", Upsert.__weir__.states)
    elements = [v(1), v(0), v(1)]
    data, offsets = codec.join_rows([codec.encode_row(e) for e in elements])
    keys, key_offsets = codec.join_rows([codec.encode_row(k) for k in ("a", "a", "b")])
    host.begin_keyed([codec.encode_row(k) for k in ("a", "a", "b")])
    out = _process.process_elements(Upsert.__weir__, host, 1, data, offsets, keys, key_offsets, [0, 0, 0], [0, 0, 1], [None, None])
    assert out.kinds == [], "every row an insert"
    assert out.side == [("late", 1, codec.encode_row(v(0)))]
    again = _process.process_elements(
        Upsert.__weir__, host, 1, data[: offsets[1]], offsets[:2], keys[: key_offsets[1]], key_offsets[:2], [0], [0], [codec.encode_row(v(1))]
    )
    assert codec.unpack(again.data, again.offsets) == [v(1), v(1)]
    assert again.kinds == [weir.RowKind.UPDATE_BEFORE, weir.RowKind.UPDATE_AFTER]
    assert again.side == [("dup", 0, codec.encode_row(1))]


def test_mistakes_with_rows_and_tags_fail_the_element():
    @weir.process
    class Mistakes(weir.KeyedProcessFunction):
        def process_element(self, value, ctx):
            if value == "single-row":
                return weir.Row(1, weir.RowKind.DELETE)
            if value == "bad-tag":
                ctx.output(5, "x")
            if value == "empty-tag":
                ctx.output("", "x")
            if value == "bad-side-value":
                ctx.output("s", {1, 2})
            if value == "nested":
                return [[weir.Row(1)]]
            return [weir.Row(value, weir.RowKind.INSERT)]

    h = ProcessHarness(Mistakes)
    for value, message in [
        ("single-row", "must yield its output records"),
        ("bad-tag", "a side output is named by a weir.OutputTag or a non-empty str, got 5"),
        ("empty-tag", "a side output is named by a weir.OutputTag or a non-empty str"),
        ("bad-side-value", "Object of type set cannot be a row"),
        ("nested", "Object of type Row cannot be a row"),
    ]:
        with pytest.raises(ProcessHarnessError, match=message):
            h.process("k", value)
    h.process("k", "fine")
    assert h.output_rows == [weir.Row("fine")]
    with pytest.raises(TypeError, match="a row's kind is a weir.RowKind"):
        weir.Row(1, "delete")
    with pytest.raises(ValueError, match="non-empty str"):
        weir.OutputTag("")


def test_rows_and_tags_compare_and_print():
    assert weir.Row(1) == weir.Row(1, weir.RowKind.INSERT) != weir.Row(1, weir.RowKind.DELETE)
    assert weir.Row([1]).get_row_kind() is weir.RowKind.INSERT
    assert repr(weir.Row("a", weir.RowKind.DELETE)) == "weir.Row('a', weir.RowKind.DELETE)"
    assert weir.OutputTag("late") == weir.OutputTag("late", "ignored type info")
    assert weir.OutputTag("late").name == "late" and repr(LATE) == "weir.OutputTag('late')"
    assert len({weir.Row(1), weir.Row(1)}) == 1


def test_the_broadcast_side_can_send_side_rows_too():
    @weir.process
    class Rules(weir.KeyedProcessFunction):
        rules = weir.BroadcastMapState(str, int)

        def process_element(self, value, ctx):
            yield value

        def process_broadcast_element(self, value, ctx):
            self.rules.put("r", value)
            ctx.output("rules-seen", value)

    h = ProcessHarness(Rules)
    h.broadcast(7)
    assert h.side_output("rules-seen") == [7]
