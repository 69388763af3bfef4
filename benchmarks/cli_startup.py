"""Start-up benchmark: wall time of `jaxembed` commands a newcomer types first, against targets.

    python benchmarks/cli_startup.py [--quick] [--json-out cli_startup.json]

Each command runs in a fresh process (what a user waits for: interpreter, imports, loading,
answer), the commands alternating, median of the repeats. The baseline beside them is a bare
`python -c pass`, the floor of any command. `similar glove-6b-50d` needs the [glove] extra.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time

from _bench import add_common_args, machine_info, machine_line, markdown_table, median, write_json

# command -> target wall seconds (issue "a newcomer's first hour")
COMMANDS = {
    "python -c pass": None,
    "jaxembed --help": 0.5,
    "jaxembed train --help": 0.5,
    "jaxembed similar --help": 0.5,
    "jaxembed similar glove-6b-50d king": 3.0,
    "jaxembed analogy glove-6b-50d man king woman": 3.0,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument("--repeats", type=int, help="runs of each command")
    args = parser.parse_args()
    if shutil.which("jaxembed") is None:
        sys.exit("the jaxembed command is not on PATH - pip install -e . in this environment first")
    info = machine_info()
    print(f"machine: {machine_line(info)}\n", flush=True)
    repeats = args.repeats or (3 if args.quick else 7)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    failures = {}
    for r in range(repeats):
        order = list(COMMANDS) if r % 2 == 0 else list(COMMANDS)[::-1]
        for name in order:
            argv = [sys.executable, "-c", "pass"] if name.startswith("python") else name.split()
            start = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True)
            times[name].append(time.perf_counter() - start)
            if done.returncode != 0:
                failures[name] = done.stderr.strip().splitlines()[-1:] or ["?"]
    rows = []
    for name, target in COMMANDS.items():
        seconds = median(times[name])
        status = (
            "failed: " + failures[name][0]
            if name in failures
            else ("-" if target is None else ("met" if seconds <= target else "missed"))
        )
        rows.append({"command": name, "seconds": seconds, "target_s": target, "status": status})
    print(
        markdown_table(
            ["command", "median wall s", "target s", "status"],
            [
                [
                    r["command"],
                    f"{r['seconds']:.2f}",
                    "-" if r["target_s"] is None else f"< {r['target_s']:g}",
                    r["status"],
                ]
                for r in rows
            ],
        )
    )
    write_json(args.json_out, {"machine": info, "repeats": repeats, "rows": rows})


if __name__ == "__main__":
    main()
