"""Training on real tokens end to end: --tokenizer words and gpt2 through fit, files and the CLI."""

import dataclasses
import json

import numpy as np
import pytest

from jaxembed import cli, loop
from jaxembed import corpus as corpus_lib
from jaxembed.checks import ParameterError
from jaxembed.export import export_projector
from jaxembed.io import load_vectors
from jaxembed.loop import FitConfig, fit
from jaxembed.tokenize import gpt2_keys, gpt2_token_bytes, gpt2_tokenizer
from jaxembed.train import TrainConfig
from jaxembed.vectors import most_similar, token_for, trained_rows, words_of_tokens
from jaxembed.vocab import Vocab

SMALL = TrainConfig(dim=8)


def prose(tmp_path, lines=60):
    rng = np.random.default_rng(0)
    names = ["Elizabeth", "Darcy", "Jane", "Bingley", "the king", "the queen"]
    verbs = ["said,", "replied.", "walked to Paris;", "smiled at", "wrote to"]
    text = "\n".join(
        f'"{rng.choice(names)} {rng.choice(verbs)} {rng.choice(names)}," she said. In {1990 + i % 5}.'
        for i in range(lines)
    )
    path = tmp_path / "prose.txt"
    path.write_text(text + "\n")
    return path, text


@pytest.fixture(scope="module")
def gpt2_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("gpt2")
    path, text = prose(tmp_path)
    seen = {}
    real_read = loop.read_corpus

    def spy(*args, **kwargs):
        seen["corpus"] = real_read(*args, **kwargs)
        return seen["corpus"]

    loop.read_corpus = spy
    try:
        config = FitConfig(epochs=1, batch_size=64, min_count=3, tokenizer="gpt2")
        result = fit([path], tmp_path / "run", SMALL, config, progress=False)
    finally:
        loop.read_corpus = real_read
    return tmp_path, text, result, seen["corpus"]


def test_gpt2_training_sees_tiktokens_ids_and_row_i_is_token_i(gpt2_run):
    tmp_path, text, result, corpus = gpt2_run
    enc = gpt2_tokenizer()
    every = [i for line in text.split("\n") for i in enc.encode_ordinary(line)]
    counts = np.bincount(every, minlength=50_257)
    # the IDs training saw: tiktoken's, the tokens seen fewer than min_count times left out
    assert corpus.ids_N.tolist() == [i for i in every if counts[i] >= 3]
    assert result.table_VxD.shape == (50_257, 8)
    assert result.vocab.index_to_key == gpt2_keys()
    np.testing.assert_array_equal(result.vocab.counts, np.where(counts >= 3, counts, 0))
    table = np.load(tmp_path / "run" / "table.npy")
    assert table.shape == (50_257, 8)  # can initialise a GPT-2 token table directly


def test_untrained_rows_keep_their_initial_values(gpt2_run):
    _, _, result, corpus = gpt2_run
    untrained = np.flatnonzero(result.vocab.counts == 0)
    trained = np.flatnonzero(result.vocab.counts > 0)
    initial = result.initial_table()
    np.testing.assert_array_equal(result.table_VxD[untrained], initial[untrained])
    assert not np.allclose(result.table_VxD[trained], initial[trained])


def test_gpt2_keys_survive_vectors_txt_vocab_txt_and_the_projector(gpt2_run, tmp_path):
    run_dir = gpt2_run[0] / "run"
    enc = gpt2_tokenizer()
    for source in (run_dir, run_dir / "vectors.txt"):
        table, vocab = load_vectors(source)
        assert vocab.index_to_key == gpt2_keys()
        for i in (0, 198, 5822, 50_255):  # "!", "\n", " king", the last BPE token
            assert gpt2_token_bytes(vocab.index_to_key[i]) == enc.decode_single_token_bytes(i)
        np.testing.assert_allclose(table, gpt2_run[2].table_VxD, atol=1e-6)
    export_projector(*load_vectors(run_dir), tmp_path / "proj")
    metadata = (tmp_path / "proj" / "metadata.tsv").read_text().splitlines()
    assert metadata == list(gpt2_keys())


def test_resume_with_another_tokenizer_is_refused(gpt2_run):
    tmp_path = gpt2_run[0]
    config = FitConfig(epochs=1, batch_size=64, min_count=3, tokenizer="words")
    with pytest.raises(ParameterError, match="tokenizer: 'gpt2' in the checkpoint, 'words' now"):
        fit([tmp_path / "prose.txt"], tmp_path / "run", SMALL, config, resume=True, progress=False)


def test_queries_map_words_to_tokens(gpt2_run):
    _, _, result, _ = gpt2_run
    table, vocab = trained_rows(result.table_VxD, result.vocab)
    assert len(vocab) == int((result.vocab.counts > 0).sum())
    assert token_for(vocab, "Elizabeth") == "ĠElizabeth"
    neighbours = most_similar(table, vocab, positive=["Elizabeth"], topn=5)
    assert all(vocab.counts[vocab[w]] > 0 for w, _ in neighbours)
    assert "ĠElizabeth" not in {w for w, _ in neighbours}
    with pytest.raises(KeyError, match=r"'Ġembed' \+ 'd' \+ 'ings'"):
        most_similar(table, vocab, positive=["embeddings"])


def test_words_of_tokens_is_the_words_after_a_space_by_frequency():
    keys = ["Ġking", "king", "Ġqueen", "ing", "Ġthe", "Ġ\u00e9t", "Ġ"]
    vocab = Vocab.from_keys(keys, [3, 9, 5, 7, 8, 0, 4])
    table, words = words_of_tokens(np.arange(14.0).reshape(7, 2), vocab)
    assert words.index_to_key == ("the", "queen", "king")  # untrained and empty words left out
    np.testing.assert_array_equal(table, [[8, 9], [4, 5], [0, 1]])


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_on_a_gpt2_run(capsys, gpt2_run):
    run_dir = gpt2_run[0] / "run"
    code, out, err = run_cli(capsys, "similar", run_dir, "Jane", "--json", "--topn", "3")
    assert code == 0 and "'Jane' is the token 'ĠJane'" in err
    assert len(json.loads(out)["Jane"]) == 3
    code, out, err = run_cli(capsys, "similar", run_dir, "embeddings")
    assert code == 2 and "'Ġembed' + 'd' + 'ings'" in err
    code, out, err = run_cli(capsys, "evaluate", run_dir, "--json")
    assert code == 0 and "GPT-2 tokens: scoring the" in err
    summary = json.loads(out)
    assert summary["words"] == len(words_of_tokens(*load_vectors(run_dir))[1])


def test_cli_train_words_lowercase(capsys, tmp_path):
    path, _ = prose(tmp_path)
    code, _, err = run_cli(
        capsys,
        "train",
        path,
        "--out",
        tmp_path / "w",
        "--tokenizer",
        "words",
        "--lowercase",
        "--min-count",
        "1",
        "--epochs",
        "1",
        "--dim",
        "8",
        "--batch-size",
        "64",
        "--no-progress",
    )
    assert code == 0, err
    vocab = Vocab.load(tmp_path / "w" / "vocab.txt")
    assert "elizabeth" in vocab and "Elizabeth" not in vocab
    assert "said" in vocab and "said," not in vocab and '"' in vocab
    saved = json.loads((tmp_path / "w" / "run.json").read_text())["settings"]["fit"]
    assert (saved["tokenizer"], saved["lowercase"]) == ("words", True)


def test_cli_conflicting_flags_name_the_flag(capsys, tmp_path):
    path, _ = prose(tmp_path)
    code, _, err = run_cli(
        capsys, "train", path, "--out", tmp_path / "o", "--tokenizer", "gpt2", "--lowercase"
    )
    assert code == 2
    assert "--lowercase with --tokenizer gpt2: GPT-2's vocabulary is cased" in err
    assert "drop --lowercase, or use --tokenizer words" in err


def test_named_corpus_lee():
    (path,) = corpus_lib.corpus_paths("lee")
    assert path.endswith("lee_background.cor")
    with pytest.raises(FileNotFoundError, match="by name: lee"):
        corpus_lib.read_corpus("no-such-corpus.txt")


# ---------------------------------------------------------------------------- corpora in memory


def test_sentences_in_memory_train_as_the_same_file(tmp_path):
    path, text = prose(tmp_path)
    sentences = [line.split() for line in text.split("\n")]
    config = FitConfig(epochs=1, batch_size=64, min_count=2)
    from_file = fit([path], tmp_path / "file", SMALL, config, progress=False)
    in_memory = fit(iter(sentences), tmp_path / "mem", SMALL, config, progress=False)
    assert in_memory.vocab == from_file.vocab
    np.testing.assert_array_equal(in_memory.table_VxD, from_file.table_VxD)
    assert (tmp_path / "mem" / "vectors.txt").exists()
    assert corpus_lib.corpus_from_sentences(sentences, 2).digest  # identifies it for resume


def test_token_ids_in_memory_with_their_vocab(tmp_path):
    enc = gpt2_tokenizer()
    _, text = prose(tmp_path)
    ids = [i for line in text.split("\n") for i in enc.encode_ordinary(line)]
    corpus = corpus_lib.corpus_from_ids(ids, Vocab.from_keys(gpt2_keys()))
    np.testing.assert_array_equal(corpus.vocab.counts, np.bincount(ids, minlength=50_257))
    config = FitConfig(epochs=1, batch_size=64, max_steps=2, steps_per_call=1)
    first = fit(corpus, tmp_path / "ids", SMALL, config, progress=False)
    assert not first.summary["finished"]
    resumed = fit(
        corpus,
        tmp_path / "ids",
        SMALL,
        dataclasses.replace(config, max_steps=None),
        resume=True,
        progress=False,
    )
    whole = fit(
        corpus,
        tmp_path / "whole",
        SMALL,
        dataclasses.replace(config, max_steps=None),
        progress=False,
    )
    np.testing.assert_array_equal(resumed.table_VxD, whole.table_VxD)  # kill + resume == whole


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: corpus_lib.corpus_from_sentences(["a b c"]), TypeError, "split it first"),
        (lambda: corpus_lib.corpus_from_sentences([["a", 1]]), TypeError, "non-empty str"),
        (lambda: corpus_lib.corpus_from_sentences([[]]), ValueError, "hold no tokens"),
        (
            lambda: corpus_lib.corpus_from_ids([0, 5], Vocab.from_keys(["a", "b"])),
            ValueError,
            "5",
        ),
        (
            lambda: corpus_lib.corpus_from_ids([0, 1], Vocab.from_keys(["a", "b"]), [0, 1]),
            ValueError,
            "sentence_starts must rise from 0 to len",
        ),
    ],
)
def test_bad_corpora_in_memory(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_sentences_refuse_a_tokenizer(tmp_path):
    config = FitConfig(epochs=1, tokenizer="words")
    with pytest.raises(ParameterError, match="tokenize them yourself"):
        fit([["a", "b"]], tmp_path / "o", SMALL, config, progress=False)


def test_evaluate_same_words_as_makes_runs_comparable(capsys, gpt2_run, tmp_path):
    path, _ = prose(tmp_path)
    words_run = tmp_path / "words"
    config = FitConfig(epochs=1, batch_size=64, min_count=3, tokenizer="words")
    fit([path], words_run, SMALL, config, progress=False)
    gpt2_dir = gpt2_run[0] / "run"
    scored = []
    for a, b in ((words_run, gpt2_dir), (gpt2_dir, words_run)):
        code, out, err = run_cli(capsys, "evaluate", a, "--same-words-as", b, "--json")
        assert code == 0 and "--same-words-as" in err
        scored.append(json.loads(out)["words"])
    assert scored[0] == scored[1]  # the same words on both sides
