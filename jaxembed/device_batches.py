"""word2vec batches made on the device: subsampling, shrunk windows, pairs and shuffling in jit.

`jaxembed.data` makes batches on the host with numpy, one thread: fast enough for a CPU step,
a fraction of what a GPU step consumes. This module samples the same process inside jitted JAX
code, on whatever device trains (`FitConfig.batches="device"`, `jaxembed train --batches device`):

1. The corpus is cut into sentence-aligned chunks as in the host pipeline (larger ones:
   `CHUNK_TOKENS`, or `FitConfig.shuffle_words` for a large batch, `jaxembed.data.shuffle_words`),
   each padded to one static length so a single compiled program serves them all. A chunk's
   IDs and sentence numbers go to the device once per epoch.
2. `chunk_examples` keeps word i with probability `keep_probabilities`, compacts the kept words
   (cumulative sum and scatter), draws each a reach ``window - b``, b uniform in [0, window),
   forms every (centre, context) candidate at offsets 1..window in both directions within a
   sentence (skip-gram), or each kept centre's (2 * window) context slots (CBOW, the padded
   layout the step also takes), and sorts the real ones to the front in a random order: a
   shuffle of the chunk, as the host pipeline's. Shapes are static; masks say what is real.
3. `DeviceBatches.calls` slices `steps_per_call` batches at a time out of a chunk's examples on
   the device; only each chunk's example count comes back to the host (to know how many calls
   it makes), read after the previous chunk's calls are queued.

The draws of chunk k of epoch e use ``fold_in(fold_in(key(seed), e), k)``: the stream is a pure
function of (seed, epoch), so a resumed run makes the same calls on the same batches. The random
numbers differ from the host pipeline's (another generator), the process is the same:
tests/test_device_batches.py compares keep rates, offset histograms and pairs per epoch with
`jaxembed.data`'s within sampling error.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxembed import data
from jaxembed.checks import ParameterError, positive_int
from jaxembed.corpus import Corpus

__all__ = ["CHUNK_TOKENS", "DeviceBatches", "chunk_examples"]

CHUNK_TOKENS = 1 << 22  # corpus words per chunk: 4M words, ~40M candidate pairs on the device


@functools.partial(jax.jit, static_argnames=("objective", "window", "sentinel"))
def chunk_examples(
    key: jax.Array,
    ids_N: jax.Array,
    sentence_N: jax.Array,
    keep_V: jax.Array,
    *,
    objective: str,
    window: int,
    sentinel: int = 0,
) -> tuple[dict[str, jax.Array], jax.Array]:
    """A chunk's word2vec examples, shuffled, the real ones first (see the module docstring).

    Args:
      key: this chunk's PRNG key.
      ids_N: the chunk's word IDs, padded to the static length N.
      sentence_N: each word's sentence number (non-decreasing), -1 for padding.
      keep_V: float32 keep probability of each word (`jaxembed.data.keep_probabilities`).
      objective: "skipgram" or "cbow".
      window: the largest centre-context distance.
      sentinel: extra zero examples appended after the last candidate, so that a slice of
        `sentinel` examples starting at any real example stays inside the arrays.

    Returns:
      (examples, n): skip-gram {"center_P", "context_P"}; CBOW {"center_P", "context_PxC",
      "context_mask_PxC"}; the first n (int32 scalar) are real, in a random order.
    """
    size = ids_N.shape[0]
    k_keep, k_reach, k_order = jax.random.split(key, 3)
    keep_N = (jax.random.uniform(k_keep, (size,)) < keep_V[ids_N]) & (sentence_N >= 0)
    at_N = jnp.where(keep_N, jnp.cumsum(keep_N, dtype=jnp.int32) - 1, size)
    sub_N = jnp.zeros(size, jnp.int32).at[at_N].set(ids_N, mode="drop")
    # Slots past the kept words get distinct negative sentence numbers: never "the same sentence".
    sentence_N = (-2 - jnp.arange(size, dtype=jnp.int32)).at[at_N].set(sentence_N, mode="drop")
    reach_N = window - jax.random.randint(k_reach, (size,), 0, window, jnp.int32)
    if objective == "skipgram":
        centers, contexts, valid = [], [], []
        for o in range(1, window + 1):
            same = sentence_N[:-o] == sentence_N[o:]
            centers += [sub_N[:-o], sub_N[o:]]
            contexts += [sub_N[o:], sub_N[:-o]]
            valid += [same & (reach_N[:-o] >= o), same & (reach_N[o:] >= o)]
        examples = {"center_P": jnp.concatenate(centers), "context_P": jnp.concatenate(contexts)}
        valid_P = jnp.concatenate(valid)
    else:
        offsets_C = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])
        at_NxC = jnp.arange(size, dtype=jnp.int32)[:, None] + offsets_C[None, :]
        inside_NxC = (at_NxC >= 0) & (at_NxC < size)
        at_NxC = jnp.clip(at_NxC, 0, size - 1)
        mask_NxC = inside_NxC & (np.abs(offsets_C)[None, :] <= reach_N[:, None])
        mask_NxC &= sentence_N[at_NxC] == sentence_N[:, None]
        examples = {
            "center_P": sub_N,
            "context_PxC": jnp.where(mask_NxC, sub_N[at_NxC], 0),
            "context_mask_PxC": mask_NxC.astype(jnp.float32),
        }
        valid_P = mask_NxC.any(axis=1)
    # Shuffle: random keys for the real examples, the largest key for the rest, one sort.
    bits_P = jax.random.bits(k_order, valid_P.shape, jnp.uint32) >> 1
    order_P = jnp.argsort(jnp.where(valid_P, bits_P, jnp.uint32(0xFFFFFFFF)))

    def take(x):  # examples past n hold any IDs: the batch mask zeroes their gradients
        return jnp.pad(x[order_P], ((0, sentinel),) + ((0, 0),) * (x.ndim - 1))

    return {name: take(x) for name, x in examples.items()}, jnp.sum(valid_P, dtype=jnp.int32)


@functools.partial(jax.jit, static_argnames=("steps", "batch_size"))
def _slice_call(examples, n, first, *, steps, batch_size):
    """Batches first .. first + steps - 1 of a chunk, stacked; examples past n are masked."""
    start = first * batch_size
    size = steps * batch_size

    def cut(x):
        piece = jax.lax.dynamic_slice_in_dim(x, start, size)
        return piece.reshape((steps, batch_size) + x.shape[1:])

    out = {name.replace("_P", "_B"): cut(x) for name, x in examples.items()}
    out["mask_B"] = ((start + jnp.arange(size)) < n).astype(jnp.float32).reshape(steps, batch_size)
    return out


class DeviceBatches:
    """One epoch after another of device-made word2vec batches, `steps_per_call` per call.

    Args:
      corpus: from `read_corpus`.
      objective: "skipgram" or "cbow".
      window, sample, batch_size, seed: as for `jaxembed.data.skipgram_batches`.
      steps_per_call: batches per call; a chunk's last call is padded with empty batches
        (mask 0), so every call has one shape.
      chunk_tokens: words per chunk (part of the stream's definition).
      mesh: a `jax.sharding.Mesh`: batches are split over its "data" axis (as
        `jaxembed.mesh.shard_batch` splits host batches); None: the default device.

    Example:
      >>> from jaxembed.corpus import read_corpus
      >>> from jaxembed.lecture import default_corpus
      >>> corpus = read_corpus([default_corpus()], min_count=5)
      >>> stream = DeviceBatches(corpus, "skipgram", 5, 1e-3, 1024, seed=0, steps_per_call=4)
      >>> batch, steps, words = next(stream.calls(epoch=0, epochs=1))
      >>> batch["center_B"].shape, steps
      ((4, 1024), 4)
    """

    def __init__(
        self,
        corpus: Corpus,
        objective: str,
        window: int,
        sample: float,
        batch_size: int,
        seed: int,
        steps_per_call: int,
        *,
        chunk_tokens: int = CHUNK_TOKENS,
        mesh: Any = None,
    ):
        if objective not in ("skipgram", "cbow"):
            raise ParameterError(
                f"batches='device' makes word2vec batches (skipgram, cbow); {objective} needs "
                "batches='host'",
                "batches",
            )
        for name, value in (("window", window), ("batch_size", batch_size)):
            positive_int(name, value)
        positive_int("steps_per_call", steps_per_call)
        positive_int("chunk_tokens", chunk_tokens)
        self.corpus, self.objective, self.window = corpus, objective, window
        self.batch_size, self.seed, self.steps = batch_size, seed, steps_per_call
        self.mesh = mesh
        self.chunks = data._sentence_chunks(corpus, chunk_tokens)
        longest = max(t1 - t0 for t0, t1, _ in self.chunks)
        self.length = -(-longest // 1024) * 1024  # one static length: one compiled program
        self.keep_V = jnp.asarray(data.keep_probabilities(corpus.vocab.counts, sample), jnp.float32)
        self.raw_per_word = corpus.n_raw_words / len(corpus.ids_N)

    def _sharding(self, name: str):
        from jax.sharding import NamedSharding, PartitionSpec

        examples = PartitionSpec(*((None,) * (self.steps > 1)), "data")
        spec = PartitionSpec() if name == "progress" else examples
        return NamedSharding(self.mesh, spec)

    def _examples(self, epoch: int, k: int):
        t0, t1, (s0, s1) = self.chunks[k]
        ids = np.zeros(self.length, np.int32)
        ids[: t1 - t0] = self.corpus.ids_N[t0:t1]
        starts = self.corpus.sentence_starts[s0 : s1 + 1] - t0
        sentence = np.full(self.length, -1, np.int32)
        sentence[: t1 - t0] = data.sentence_numbers(starts)
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(self.seed), epoch), k)
        return chunk_examples(
            key,
            ids,
            sentence,
            self.keep_V,
            objective=self.objective,
            window=self.window,
            sentinel=self.steps * self.batch_size,
        )

    def calls(
        self, epoch: int, epochs: int, start_batch: int = 0
    ) -> Iterator[tuple[dict, int, list[int]]]:
        """The calls of one epoch: (stacked batch on the device, steps, raw words per step).

        start_batch: batches of the epoch already done (a multiple of steps_per_call within its
        chunk, as checkpoints are taken at the end of a call): the result is the full epoch's
        tail. Batches count the empty ones that pad each chunk's last call.
        """
        n_words, per_call = len(self.corpus.ids_N), self.steps * self.batch_size
        raw = self.raw_per_word
        done, carry = 0, 0  # batches of the epoch before chunk k; words of chunks without pairs
        pending = self._examples(epoch, 0)
        for k, (t0, t1, _) in enumerate(self.chunks):
            examples, n = pending
            # The one value read back per chunk; the chunk was queued before the previous
            # chunk's calls, so reading it waits for no training step.
            n = int(n)
            calls = -(-n // per_call)
            if k + 1 < len(self.chunks):
                pending = self._examples(epoch, k + 1)  # queued before this chunk's steps
            if calls == 0:
                carry += round(t1 * raw) - round(t0 * raw)
                continue
            if done + calls * self.steps <= start_batch:
                done, carry = done + calls * self.steps, 0
                continue
            # Batch j of the chunk covers examples [jB, (j+1)B) of n: the corpus from bound[j]
            # to bound[j + 1], as the host pipeline counts its batches.
            taken = np.minimum(np.arange(calls * self.steps + 1) * self.batch_size, n)
            bound = t0 + (t1 - t0) * taken / n
            for c in range(max(0, (start_batch - done) // self.steps), calls):
                j = np.arange(c * self.steps, (c + 1) * self.steps)
                batch = _slice_call(
                    examples, n, int(j[0]), steps=self.steps, batch_size=self.batch_size
                )
                batch["progress"] = ((epoch + bound[j] / n_words) / epochs).astype(np.float32)
                words = [round(bound[i + 1] * raw) - round(bound[i] * raw) for i in j]
                words[0] += carry
                carry = 0
                if self.steps == 1:  # one step: the step is not scanned, nor stacked
                    batch = {name: x[0] for name, x in batch.items()}
                if self.mesh is not None:
                    batch = {
                        name: jax.device_put(x, self._sharding(name)) for name, x in batch.items()
                    }
                yield batch, self.steps, words
            done += calls * self.steps
