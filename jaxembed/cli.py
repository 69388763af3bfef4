"""The `jaxembed` command line: one subcommand module per area, registered here.

Each module in `jaxembed/commands/` exposes `register(subparsers)`, which adds its
subcommands and sets `func` (called with the parsed arguments) on each parser.
Heavy imports (jax) happen inside the `func`s, so `jaxembed --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

_COMMAND_MODULES = ("demo", "train", "vectors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxembed",
        description="Token embeddings in JAX: tokenize, look up, learn, evaluate.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"jaxembed.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader left (`jaxembed similar ... | head`): stop quietly with the shell's status.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, ImportError) as err:
        # Library errors already name the fix; show them without a traceback.
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"jaxembed {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
