"""Every notebook runs top to bottom on CPU with small sizes, in a kernel of this interpreter.

The TPU notebook's sharded path runs on 8 CPU devices (XLA_FLAGS forces them before jax starts in
the kernel). Each notebook takes tens of seconds, so these are marked slow; `.ci/run` runs them.
"""

import json
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL = "jaxembed-test"


NAMES = ("01_token_embeddings_from_scratch.ipynb", "02_train_word2vec_on_tpu.ipynb")


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_clean_and_installs_itself_on_colab(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    # Outputs stay out of git: the notebooks are run by the tests and on Colab.
    assert all(not c.outputs and c.execution_count is None for c in code)
    # The first code cell installs jaxembed only where it is missing (Colab), never here.
    assert 'find_spec("jaxembed") is None' in code[0].source and "pip" in code[0].source
    # No library code pasted into cells: they import jaxembed and define no functions.
    assert not any(line.lstrip().startswith("def ") for c in code for line in c.source.splitlines())
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """A kernelspec running this very interpreter (the venv with jaxembed), found via JUPYTER_PATH."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": KERNEL, "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JAXEMBED_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    work = tmp_path / "work"
    work.mkdir()
    return work


def _execute(name: str, work: Path) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb, kernel_name=KERNEL, timeout=300, resources={"metadata": {"path": str(work)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    return nb


def _text(nb) -> str:
    return "".join(
        out.get("text", "") for c in nb.cells if c.cell_type == "code" for out in c.outputs
    )


def _images(nb) -> int:
    return sum(
        "image/png" in out.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for out in c.outputs
    )


@pytest.mark.slow
def test_from_scratch_notebook_runs(kernel):
    nb = _execute("01_token_embeddings_from_scratch.ipynb", kernel)
    text = _text(nb)
    assert "backend cpu" in text and "(SMALL)" in text
    assert "38,597,376 weights" in text  # GPT-2 small's table, sized by flax
    assert "True True" in text  # one-hot product and Dense equal the lookup
    assert _images(nb) >= 5
    assert (kernel / "notebook-out" / "lee" / "word2vec" / "vectors.txt").is_file()


@pytest.mark.slow
def test_tpu_notebook_runs_sharded_on_8_cpu_devices(kernel, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    nb = _execute("02_train_word2vec_on_tpu.ipynb", kernel)
    text = _text(nb)
    assert "backend cpu: 8 x cpu" in text
    assert "{'data': 4, 'model': 2}" in text
    assert "P('model', None)" in text  # the table is sharded by vocabulary rows
    assert "on 8 cpu devices" in text
    assert _images(nb) >= 3
