"""The signatures `describe` derives from annotations (`weir._signature`)."""

from __future__ import annotations

from typing import Any, Dict, Generator, Iterable, Iterator, List, Optional, Union

import pytest

import weir
from weir._signature import element_of, of_annotation, signature_of


def t(scalar="any", nullable=False, is_list=False):
    return {"scalar": scalar, "nullable": nullable, "is_list": is_list}


def sig(fn):
    return signature_of(fn.__weir__)


@pytest.mark.parametrize(
    "annotation, expected",
    [
        (int, t("int")),
        (float, t("float")),
        (str, t("string")),
        (bytes, t("bytes")),
        (bool, t("bool")),
        (weir.Timestamp, t("timestamp")),
        (Optional[int], t("int", nullable=True)),
        (Union[None, str], t("string", nullable=True)),
        (list[float], t("float", is_list=True)),
        (List[str], t("string", is_list=True)),
        (Optional[List[bool]], t("bool", nullable=True, is_list=True)),
        (list, t(is_list=True)),
        (list[list[int]], t(is_list=True)),
        (list[Optional[int]], t(is_list=True)),
        (dict, t()),
        (Dict[str, int], t()),
        (Any, t()),
        (Union[int, str], t()),
        (Union[int, str, None], t(nullable=True)),
        (None, t(nullable=True)),
        (object, t()),
    ],
)
def test_value_types_of_annotations(annotation, expected):
    assert of_annotation(annotation) == expected


def test_pep604_unions():
    assert of_annotation(eval("int | None")) == t("int", nullable=True)
    assert of_annotation(eval("list[str] | None")) == t("string", nullable=True, is_list=True)


@pytest.mark.parametrize(
    "annotation, expected",
    [
        (Iterable[str], t("string")),
        (Iterator[Optional[int]], t("int", nullable=True)),
        (Generator[float, None, None], t("float")),
        (list[bytes], t("bytes")),
        (Iterable, t()),
        (Iterator[dict], t()),
        (str, t()),
    ],
)
def test_element_types_of_iterable_annotations(annotation, expected):
    assert element_of(annotation) == expected


def test_transforms_report_their_row_parameter_and_result():
    @weir.map
    def shout(s: str, suffix: str = "!") -> str:
        return s.upper() + suffix

    @weir.filter
    def is_long(s: str) -> bool:
        return len(s) > 3

    @weir.flat_map
    def split(line: Optional[str]) -> Iterator[str]:
        yield from (line or "").split()

    @weir.key_selector
    def bucket(n: int) -> int:
        return n % 10

    @weir.timestamp_assigner
    def at(r: dict) -> int:
        return r["ts"]

    @weir.map
    def bare(x):
        return x

    assert sig(shout) == {"params": [{"name": "s", "type": t("string")}], "result": t("string")}
    assert sig(is_long) == {"params": [{"name": "s", "type": t("string")}], "result": t("string")}, "the kept row"
    assert sig(split) == {"params": [{"name": "line", "type": t("string", nullable=True)}], "result": t("string")}
    assert sig(bucket) == {"params": [{"name": "n", "type": t("int")}], "result": t("int")}
    assert sig(at) == {"params": [{"name": "r", "type": t()}], "result": t("timestamp")}
    assert sig(bare) == {"params": [{"name": "x", "type": t()}], "result": t()}


def test_string_annotations_that_do_not_evaluate_fall_back():
    namespace = {"weir": weir}
    exec(
        "@weir.map\ndef f(x: 'int', y: 'NoSuchType') -> 'Missing':\n    return x\n"
        "@weir.map\ndef g(x: 'str') -> 'float':\n    return 1.0\n",
        namespace,
    )
    assert sig(namespace["f"]) == {"params": [{"name": "x", "type": t("int")}], "result": t()}
    assert sig(namespace["g"]) == {"params": [{"name": "x", "type": t("string")}], "result": t("float")}


def test_a_callable_object_and_one_that_cannot_be_inspected():
    class Scale:
        def __call__(self, x: float) -> float:
            return 2 * x

    scale = weir.map(name="scale")(Scale())
    assert sig(scale) == {"params": [{"name": "x", "type": t("float")}], "result": t("float")}

    class Opaque:
        __signature__ = "not a signature"  # inspect.signature raises: no signature, no failure

        def __call__(self, x):
            return x

    assert signature_of(weir.map(name="opaque")(Opaque()).__weir__) is None


def test_aggregates_report_the_value_of_add_and_the_result():
    @weir.aggregate
    class Mean(weir.AggregateFunction):
        def create_accumulator(self):
            return [0.0, 0]

        def add(self, acc, value: float):
            return [acc[0] + value, acc[1] + 1]

        def merge(self, acc, other):
            return [acc[0] + other[0], acc[1] + other[1]]

        def get_result(self, acc) -> Optional[float]:
            return acc[0] / acc[1] if acc[1] else None

    assert signature_of(Mean.__weir__) == {"params": [{"name": "value", "type": t("float")}], "result": t("float", True)}


def test_process_functions_report_their_element_and_what_they_yield():
    @weir.process
    class Counts(weir.KeyedProcessFunction):
        def process_element(self, click: dict, ctx) -> Iterator[int]:
            yield 1

    @weir.process
    class OnTimerOnly(weir.KeyedProcessFunction):
        def process_element(self, value: str, ctx) -> None:
            pass

        def on_timer(self, timestamp, ctx) -> Iterable[str]:
            yield "x"

    @weir.process
    class Disagree(weir.KeyedProcessFunction):
        def process_element(self, value, ctx) -> Iterator[int]:
            yield 1

        def on_timer(self, timestamp, ctx) -> Iterator[str]:
            yield "x"

    @weir.co_process
    class Join(weir.KeyedCoProcessFunction):
        def process_element1(self, order: dict, ctx) -> Iterator[dict]:
            yield order

        def process_element2(self, payment: float, ctx) -> Iterator[dict]:
            yield {}

    @weir.co_process
    class Same(weir.KeyedCoProcessFunction):
        def process_element1(self, value, ctx):
            return None

        def process_element2(self, value: int, ctx):
            return None

    assert signature_of(Counts.__weir__) == {"params": [{"name": "click", "type": t()}], "result": t("int")}
    assert signature_of(OnTimerOnly.__weir__) == {"params": [{"name": "value", "type": t("string")}], "result": t("string")}
    assert signature_of(Disagree.__weir__)["result"] == t()
    assert signature_of(Join.__weir__) == {
        "params": [{"name": "order", "type": t()}, {"name": "payment", "type": t("float")}],
        "result": t(),
    }
    assert signature_of(Same.__weir__)["params"] == [
        {"name": "value1", "type": t()},
        {"name": "value2", "type": t("int")},
    ]


def test_process_window_functions_report_key_window_and_elements():
    @weir.process_window
    def totals(key: str, window: weir.TimeWindow, elements: list[float], ctx) -> Iterator[float]:
        yield sum(elements)

    @weir.process_window
    def bare(key, window, elements):
        return []

    assert sig(totals) == {
        "params": [{"name": "key", "type": t("string")}, {"name": "elements", "type": t("float", is_list=True)}],
        "result": t("float"),
    }
    assert [p["name"] for p in sig(bare)["params"]] == ["key", "elements"]
    assert totals.__weir__.takes_context and not bare.__weir__.takes_context
