"""`python -m weir build`: argument and plugin errors (fast), and an opt-in full build.

The full build runs componentize-py (~10-20 s); set WEIR_TEST_BUILD=1 to run it. With the
`wasmtime` package installed it also loads the component and calls its exports.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from weir import build

REPO = Path(__file__).resolve().parents[3]
WIT = REPO / "wit"


def run_build(*args):
    return subprocess.run([sys.executable, "-m", "weir", "build", *map(str, args)], capture_output=True, text=True)


def test_missing_plugin_folder_is_a_usage_error(tmp_path):
    proc = run_build(tmp_path / "nope", "--wit", WIT, "-o", tmp_path / "out.wasm")
    assert proc.returncode == 2
    assert "no such plugin folder" in proc.stderr


def test_folder_without_app_py(tmp_path):
    proc = run_build(tmp_path, "--wit", WIT, "-o", tmp_path / "out.wasm")
    assert proc.returncode == 2
    assert "no app.py" in proc.stderr


def test_missing_arguments():
    proc = run_build()
    assert proc.returncode == 2
    assert "--wit" in proc.stderr


def test_app_without_plugin_declaration_fails_before_componentize(tmp_path):
    (tmp_path / "app.py").write_text("import weir\n\n@weir.map\ndef f(x):\n    return x\n")
    proc = run_build(tmp_path, "--wit", WIT, "-o", tmp_path / "out.wasm")
    assert proc.returncode == 1
    assert "no plugin declaration" in proc.stderr and "weir.plugin(" in proc.stderr
    assert not (tmp_path / "out.wasm").exists()


def test_app_that_raises_on_import(tmp_path):
    (tmp_path / "app.py").write_text("import weir\nraise RuntimeError('boom')\n")
    proc = run_build(tmp_path, "--wit", WIT, "-o", tmp_path / "out.wasm")
    assert proc.returncode == 1
    assert "app.py: RuntimeError: boom" in proc.stderr


def test_missing_componentize_py_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(build.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(build.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(build.BuildError, match="just setup.*componentize-py==0.25.1"):
        build.componentize_py_command()


def test_staging_leaves_out_tests_and_caches(tmp_path):
    plugin = tmp_path / "p"
    (plugin / "__pycache__").mkdir(parents=True)
    (plugin / ".venv").mkdir()
    (plugin / "app.py").write_text("")
    (plugin / "helpers.py").write_text("")
    (plugin / "test_app.py").write_text("")
    (plugin / "old.wasm").write_bytes(b"")
    staged = tmp_path / "s"
    build.stage(plugin, staged)
    names = sorted(p.name for p in staged.iterdir())
    assert names == ["app.py", "helpers.py", "weir", "weir_component_glue.py"]
    assert (staged / "weir" / "_dispatch.py").is_file()


@pytest.mark.skipif(os.environ.get("WEIR_TEST_BUILD") != "1", reason="slow: set WEIR_TEST_BUILD=1")
def test_build_upper_python(tmp_path):
    out = tmp_path / "upper.wasm"
    proc = run_build(REPO / "plugins" / "upper-python", "--wit", WIT, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == bytes.fromhex("0061736d0d000100")
    assert "built upper 0.1.0" in proc.stdout

    wasmtime = pytest.importorskip("wasmtime")
    from wasmtime.component import Component, Linker, Record

    engine = wasmtime.Engine()
    linker = Linker(engine)
    linker.add_wasip2()
    with linker.root() as root:
        with root.add_instance("weir:plugin/log@0.1.0") as log:
            log.add_func("log", lambda store, level, message: None)
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    instance = linker.instantiate(store, Component.from_file(engine, str(out)))

    def export(interface, name):
        return instance.get_func(store, instance.get_export_index(store, name, instance.get_export_index(store, interface)))

    describe = export("weir:plugin/describe@0.1.0", "describe")
    info = describe(store)
    describe.post_return(store)
    assert (info.name, info.version, info.sdk) == ("upper", "0.1.0", "weir-sdk-python 0.1.0")
    assert [f.name for f in info.functions] == ["upper", "upper_name"]

    apply = export("weir:plugin/transform@0.1.0", "apply")
    rows = [json.dumps(r).encode() for r in [{"name": "bob"}, {"id": 2}]]
    batch = Record()
    batch.data = b"".join(rows)
    batch.offsets = [0, len(rows[0]), len(rows[0]) + len(rows[1])]
    result = apply(store, "upper_name", batch)
    apply.post_return(store)
    assert list(result.counts) == [1, 0]
    assert [(e.index, e.message) for e in result.errors] == [(1, "KeyError: 'name'")]
    assert json.loads(bytes(result.rows.data)) == {"name": "BOB", "name_len": 3}
