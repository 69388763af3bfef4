"""Shared helpers of the benchmark scripts: timing side by side, machine facts, tables, JSON.

The machines these run on are shared and noisy, so every script measures its baseline in the same
run as jaxembed, alternating between them, and reports medians and ratios rather than absolute
times. `interleaved` does the alternating; `run_measured` runs one configuration in its own
subprocess so that its peak memory is its own.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np


def shared_data(name: str) -> str:
    """Path of a file in the project's shared data folder, ../shared/data beside the repository."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(os.path.dirname(repo), "shared", "data", name)


def require_file(path: str, flag: str = "--corpus", example: str = "") -> str:
    """`path` if it exists, else exit with one line saying which flag to pass instead.

    The default paths point into ../shared/data, which exists only beside this repository's own
    checkout (its CI); a user's clone has none.
    """
    if os.path.exists(path):
        return path
    hint = f", e.g. {flag} {example}" if example else ""
    sys.exit(
        f"{path} does not exist (the default data folder ../shared/data is only there in this "
        f"project's own set-up) - pass {flag} FILE with a file of your own{hint}"
    )


def add_common_args(parser) -> None:
    """Adds --quick and --json-out to an argparse parser."""
    parser.add_argument("--quick", action="store_true", help="small sizes, < 2 minutes")
    parser.add_argument("--json-out", help="also write the results as JSON to this file")


def machine_info() -> dict:
    """Facts that make figures comparable: CPU, cores, memory, load, library versions, device."""
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores_online": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    # Versions from the installed metadata: importing JAX here would make later forks unsafe.
    for name in ("jax", "jaxlib", "numpy", "flax", "optax", "gensim", "tiktoken"):
        try:
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    if "jax" in sys.modules:  # scripts that run JAX in this process also name the device
        import jax

        device = jax.devices()[0]
        info["device"] = f"{device.platform}: {device.device_kind} x {jax.device_count()}"
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def machine_line(info: Mapping[str, Any]) -> str:
    """One line for a report header."""
    return (
        f"{info['cpu']}, {info['cores_usable']} of {info['cores_online']} cores usable, "
        f"{info['memory_gib']} GiB, load {info['load_average_1m']} (1 min, at start), "
        f"python {info['python']}, jax {info.get('jax', '-')}, "
        f"device {info.get('device', '-')}"
    )


def block(result: Any) -> Any:
    """Waits for JAX's asynchronous results: an array, or a tuple/dict of them (a train state).

    Lists are left alone: they are tokenizer outputs, and walking 100,000s of strings as a
    pytree would cost more than the tokenizer.
    """
    if hasattr(result, "block_until_ready"):
        result.block_until_ready()
    elif isinstance(result, tuple | dict) and "jax" in sys.modules:
        import jax

        jax.block_until_ready(result)
    return result


def calls_per_sample(fn: Callable[[], Any], target_s: float) -> int:
    """How many calls of `fn` make one timed sample last about `target_s` (one warm-up call)."""
    start = time.perf_counter()
    block(fn())
    elapsed = time.perf_counter() - start
    return max(1, int(target_s / max(elapsed, 1e-9)))


def interleaved(
    fns: Mapping[str, Callable[[], Any]],
    repeats: int,
    numbers: Mapping[str, int] | None = None,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Times each function `repeats` times, alternating between them.

    Round r runs the functions in order, round r + 1 in reverse order, so that no function always
    runs right after the same neighbour; each sample runs `numbers[name]` calls (default 1) and
    waits for the last. Warm up (compile) before calling this.

    Returns:
      ({name: [seconds per call, one per sample]}, {name: [minor page faults per call, ...]}).
    """
    names = list(fns)
    numbers = numbers or {}
    times: dict[str, list[float]] = {name: [] for name in names}
    faults: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            n = numbers.get(name, 1)
            faults_before = minor_faults()
            start = time.perf_counter()
            for _ in range(n):
                out = fns[name]()
            block(out)
            elapsed = time.perf_counter() - start
            del out
            times[name].append(elapsed / n)
            faults[name].append((minor_faults() - faults_before) / n)
    return times, faults


def median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64)))


def minor_faults() -> int:
    """Page faults served without I/O so far in this process (first touches of fresh memory)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def run_measured(
    cmd: Sequence[str],
    cpus: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
) -> dict:
    """Runs `cmd` in a child process: its wall time, peak RSS and output.

    Peak RSS is the child's VmHWM (/proc/PID/status), polled every 20 ms once the child has
    exec'd `cmd`. Not ru_maxrss: Linux folds the size of the pre-exec copy of this (parent)
    process into it, so a small child would report at least the parent's size; ru_maxrss is
    returned too. `cpus` pins the child to the first `cpus` usable cores, so that two tools get
    the same cores.

    Returns:
      {"returncode", "wall_s", "peak_rss_mib", "ru_maxrss_mib", "user_s", "system_s", "stdout",
       "stderr"}.
    """
    usable = sorted(os.sched_getaffinity(0))
    pin = usable[:cpus] if cpus else None
    own_cmdline = ("\0".join(cmd) + "\0").encode()

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        # No preexec_fn: it would make Python fork (unsafe once JAX runs in this process).
        # Popen returns once the child has exec'd, long before a Python child starts threads.
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=dict(env or os.environ))
        if pin:
            os.sched_setaffinity(proc.pid, pin)
        deadline = None if timeout_s is None else start + timeout_s
        peak_kib = 0
        while True:
            peak_kib = max(peak_kib, _high_water_kib(proc.pid, own_cmdline))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {
            "returncode": proc.returncode,
            "wall_s": wall,
            "peak_rss_mib": (peak_kib or usage.ru_maxrss) / 1024,  # Linux reports KiB
            "ru_maxrss_mib": usage.ru_maxrss / 1024,
            "user_s": usage.ru_utime,
            "system_s": usage.ru_stime,
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
        }


def _high_water_kib(pid: int, cmdline: bytes) -> int:
    """VmHWM of `pid` in KiB, or 0 before it has exec'd `cmdline` (or once it has exited)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if f.read() != cmdline:
                return 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; floats keep the formatting the caller gave them as strings."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: str | None, payload: Mapping[str, Any]) -> None:
    """Writes `payload` to `path` atomically (temp file in the same folder, then rename)."""
    if not path:
        return
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, default=_jsonable)
            f.write("\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"\nwrote {path}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"
