import types

import pytest

import weir
from weir import Kind, Plugin, PluginDefinitionError, UnknownFunctionError


ANY = {"scalar": "any", "nullable": False, "is_list": False}
#: The signature of `def f(x)` without annotations.
ANY_TO_ANY = {"params": [{"name": "x", "type": ANY}], "result": ANY}


def make_module(**attrs):
    module = types.ModuleType("fake_app")
    module.__dict__.update(attrs)
    return module


def test_decorators_keep_plain_callables():
    @weir.map
    def upper(s):
        return s.upper()

    @weir.filter
    def is_long(s):
        return len(s) > 3

    @weir.flat_map
    def split(line):
        yield from line.split()

    @weir.key_selector
    def first_letter(s):
        return s[0]

    @weir.timestamp_assigner
    def ts(r):
        return r["ts"]

    assert upper("a") == "A"
    assert is_long("abcd") and not is_long("abc")
    assert list(split("a b")) == ["a", "b"]
    assert first_letter("xy") == "x"
    assert ts({"ts": 5}) == 5
    assert [f.__weir__.kind for f in (upper, is_long, split, first_letter, ts)] == [
        Kind.MAP, Kind.FILTER, Kind.FLAT_MAP, Kind.KEY_SELECTOR, Kind.TIMESTAMP_ASSIGNER,
    ]
    assert upper.__weir__.name == "upper" and upper.__weir__.fn is upper


def test_decorator_with_explicit_name():
    @weir.map(name="shout")
    def upper(s):
        return s.upper()

    assert upper.__weir__.name == "shout"
    assert upper("a") == "A"


def test_decorating_twice_is_an_error():
    @weir.map
    def f(x):
        return x

    with pytest.raises(PluginDefinitionError, match="already a weir map"):
        weir.filter(f)


def test_plugin_declaration_lands_in_the_calling_module():
    namespace = {"weir": weir}
    exec("meta = weir.plugin(name='p', version='1.2.3')", namespace)
    assert namespace["__weir_plugin__"] == weir.PluginMeta("p", "1.2.3")
    with pytest.raises(PluginDefinitionError, match="version"):
        weir.plugin(name="p", version="")


def test_plugin_from_module_and_describe():
    @weir.map
    def a(x):
        return x

    @weir.filter(name="b")
    def keep(x):
        return True

    module = make_module(__weir_plugin__=weir.PluginMeta("demo", "0.2.0"), a=a, keep=keep, alias=a, other=len)
    plugin = Plugin.from_module(module)
    assert list(plugin.functions) == ["a", "b"]
    assert plugin.describe() == {
        "name": "demo",
        "version": "0.2.0",
        "sdk": "weir-sdk-python 0.2.0",
        "functions": [
            {"name": "a", "kind": "map", "encoding": "python-marshal", "signature": ANY_TO_ANY},
            {"name": "b", "kind": "filter", "encoding": "python-marshal", "signature": ANY_TO_ANY},
        ],
    }
    with pytest.raises(UnknownFunctionError, match="has no function 'c' \\(it has: a, b\\)"):
        plugin.function("c")


def test_plugin_definition_errors():
    @weir.map
    def a(x):
        return x

    with pytest.raises(PluginDefinitionError, match="no plugin declaration"):
        Plugin.from_module(make_module(a=a))
    with pytest.raises(PluginDefinitionError, match="no functions"):
        Plugin.from_module(make_module(__weir_plugin__=weir.PluginMeta("p", "1")))

    @weir.map(name="a")
    def b(x):
        return x

    with pytest.raises(PluginDefinitionError, match="two functions are named 'a'"):
        Plugin.from_module(make_module(__weir_plugin__=weir.PluginMeta("p", "1"), a=a, b=b))


def test_log_goes_to_python_logging_outside_a_component(caplog):
    with caplog.at_level("INFO", logger="weir.plugin"):
        weir.log.info("hello")
        weir.log.warn("careful")
    assert [(r.levelname, r.message) for r in caplog.records] == [("INFO", "hello"), ("WARNING", "careful")]
