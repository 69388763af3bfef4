"""Shared test settings: strict shapes, as equinox does, exact float32 products, and no time
limit on a hypothesis example (a shared 2-core machine can take longer than its 200 ms default:
the tests check behaviour, the benchmarks time)."""

import hypothesis
import jax

hypothesis.settings.register_profile("jaxembed", deadline=None)
hypothesis.settings.load_profile("jaxembed")

jax.config.update("jax_numpy_rank_promotion", "raise")
# On a GPU or TPU, float32 matrix products default to TF32 or bfloat16 passes; the tests compare
# steps with closed forms and autodiff to float32 accuracy (a CPU is always exact).
jax.config.update("jax_default_matmul_precision", "highest")


def random_corpus_file(directory, n_words: int, n_lines: int, line_words: int):
    """A text file of `n_lines` lines of `line_words` words drawn from w0 .. w{n_words - 1}."""
    import numpy as np

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(n_words)]
    lines = [
        " ".join(words[j] for j in rng.integers(0, n_words, line_words)) for _ in range(n_lines)
    ]
    path = directory / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    return path
