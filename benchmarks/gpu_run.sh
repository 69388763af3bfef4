#!/usr/bin/env bash
# jaxembed on a CUDA machine without network, in one call of at most ~8 minutes (BENCHMARKS.md,
# section 7, "On a GPU"). Here, where PyPI is reachable, pack the wheels the CUDA image lacks and
# the corpus (`bash ../shared/gpu/pack.sh`, Python 3.12 by default); there, from the project root
# with .gpu-pack/ beside the code:
#     bash benchmarks/gpu_run.sh
# 1. jaxembed vs gensim: benchmarks/train_vs_gensim.py on the whole 11M-word corpus, 5 epochs,
#    gensim on all the machine's cores (its corpus_file input, which scales with threads), jaxembed
#    on the GPU, each objective in OBJECTIVES (default "skipgram cbow"), JAXEMBED_ARGS added to
#    `jaxembed train`, at most BENCH_S seconds (default 300).
# 2. The step alone at GPU batch sizes (benchmarks/train_step.py: pairs/s and GB/s of row traffic,
#    to hold against the memory roofline; float32 and bfloat16 tables), STEP_ARGS, at most STEP_S
#    seconds (default 90).
# 3. The embedding, training and device-batch tests on the GPU, at most TEST_S (default 120).
# STEP_S=0 or TEST_S=0 leaves that part out.
# Logs and JSON go to $OUT if set (the device tool's folder), else ./gpu-out. Check the whole
# command on a CPU first (it runs there too, with PACK_PYTHON matching python3).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${OUT:-$root/gpu-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/jaxembed-site .gpu-pack/whl/*.whl || { echo "wheel install failed"; exit 1; }
export PYTHONPATH="$root:/tmp/jaxembed-site${PYTHONPATH:+:$PYTHONPATH}"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1
  python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__,
'optax', optax.__version__, jax.default_backend(), jax.devices())"
  echo "cores $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"; } 2>&1 | tee "$out/device.txt"

echo "== 1. jaxembed vs gensim ($(date +%T))"
timeout "${BENCH_S:-300}" python3 benchmarks/train_vs_gensim.py --corpus .gpu-pack/corpus-en-11m.txt.xz \
  --threads "$(nproc)" --gensim-input corpus_file --evaluators gensim ${BENCH_ARGS:-} \
  --objective ${OBJECTIVES:-skipgram cbow} --jaxembed-args "${JAXEMBED_ARGS:-}" \
  --json-out "$out/train_vs_gensim-gpu.json" >"$out/train_vs_gensim.txt" 2>&1
echo "exit $?"
grep -v "^\[" "$out/train_vs_gensim.txt" | tail -n 30

if [ "${STEP_S:-90}" != 0 ]; then
  echo "== 2. the step alone ($(date +%T))"
  timeout "${STEP_S:-90}" python3 benchmarks/train_step.py --vocab 61286 --dim 200 --update sparse \
    --share-negatives 64 --steps 16 --repeats 5 \
    ${STEP_ARGS:---batch 65536 262144 1048576 --table-dtype float32 bfloat16} 2>&1 | tee "$out/train_step.txt"
fi
if [ "${TEST_S:-120}" != 0 ]; then
  echo "== 3. tests on the device ($(date +%T))"
  XLA_PYTHON_CLIENT_PREALLOCATE=false timeout "${TEST_S:-120}" python3 -m pytest -q \
    -p no:cacheprovider -n "${TEST_WORKERS:-6}" tests/test_embed.py tests/test_train.py \
    tests/test_device_batches.py >"$out/tests.txt" 2>&1
  echo "exit $?"
  tail -n 25 "$out/tests.txt"
fi
echo "== done ($(date +%T))"
