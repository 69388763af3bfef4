"""The `jaxembed` command line: one subcommand module per area, registered here.

Each module in `jaxembed/commands/` exposes `register(subparsers)`, which adds its
subcommands and sets `func` (called with the parsed arguments) on each parser.
Heavy imports (jax) happen inside the `func`s, so `jaxembed --help` stays instant.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import signal
import sys

_COMMAND_MODULES = ("demo", "train", "vectors")
# Errors whose message is the whole story (the library's name the fix): shown without traceback.
_SHOWN = (ValueError, KeyError, FileNotFoundError, FileExistsError, PermissionError, ImportError)
# Python parameters whose flag has another name.
_FLAG_DESTS = {"out_dir": "out", "max_size": "max_vocab"}


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
    argv = sys.argv[1:] if argv is None else list(argv)
    args, unknown = parser.parse_known_args(argv)
    command = _subparser(parser, args.command)
    if unknown:  # the subcommand's usage, not the top-level one
        (command or parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    args.given = given_flags(command, argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader left (`jaxembed similar ... | head`): stop quietly with the shell's status.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except Exception as err:
        if _no_space(err):  # wherever it came from: checkpoints, outputs, exports
            print(
                f"jaxembed {args.command}: error: no space left on the device - free some, then "
                "run again (`jaxembed train ... --resume` continues from the last checkpoint)",
                file=sys.stderr,
            )
            return 2
        if not isinstance(err, _SHOWN):
            raise
        # Library errors already name the fix; show them without a traceback.
        message = str(err.args[0] if isinstance(err, KeyError) and err.args else err)
        message = in_flags(message, getattr(err, "parameters", ()), command)
        print(f"jaxembed {args.command}: error: {message}", file=sys.stderr)
        return 2


def in_flags(message: str, parameters, parser: argparse.ArgumentParser | None) -> str:
    """The library's message with the Python parameters it names replaced by the parser's flags.

    ``batch_size=100`` becomes ``--batch-size 100``, ``tokenizer='gpt2'`` becomes
    ``--tokenizer gpt2``, ``resume=True`` becomes ``--resume`` and a bare ``lr`` becomes ``--lr``;
    parameters the command has no flag for stay as they are.
    """
    if parser is None:
        return message
    flags = {}
    for action in parser._actions:  # the first flag of a dest names it (--objective, not --sg)
        if action.option_strings:
            flags.setdefault(action.dest, action.option_strings[0])
    for name in parameters:
        flag = flags.get(_FLAG_DESTS.get(name, name))
        if flag is None:
            continue
        pattern = rf"(?<![\w-]){re.escape(name)}(?:(=True)\b|=['\"]([\w.-]+)['\"]|(=)|(?!\w))"

        def to_flag(m, flag=flag):
            if m.group(2) is not None:  # a quoted word: as typed on the command line
                return f"{flag} {m.group(2)}"
            return flag + (" " if m.group(3) else "")

        message = re.sub(pattern, to_flag, message)
    return message


def given_flags(parser: argparse.ArgumentParser | None, argv: list[str]) -> set[str]:
    """The dests of the options that `argv` spells out (the parser allows no abbreviations)."""
    if parser is None:
        return set()
    words = {arg.split("=", 1)[0] for arg in argv if arg.startswith("-")}
    return {a.dest for a in parser._actions if words & set(a.option_strings)}


def _no_space(err: BaseException | None) -> bool:
    """Whether `err`, or an error it came from (orbax wraps them), is a full disk (ENOSPC)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            return True
        # tensorstore (orbax's writer) raises ValueError("RESOURCE_EXHAUSTED: ... [os_error_code='28']")
        if "No space left on device" in str(err) or "os_error_code='28'" in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False


def _subparser(parser: argparse.ArgumentParser, command: str | None):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    return None


def run() -> int:
    """The `jaxembed` console script: `main` with JAX's persistent compilation cache on.

    Commands compile the same small functions every time (a query's top-k over a table of the
    same shape, a train step); XLA's compiled code is kept in ~/.cache/jaxembed/xla (or
    $XDG_CACHE_HOME/jaxembed/xla), so later runs skip those compiles. Set JAX_COMPILATION_CACHE_DIR
    to put it elsewhere. Set through JAX's environment variables, so nothing imports JAX here.
    """
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(home, "jaxembed", "xla"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    return main()


if __name__ == "__main__":
    sys.exit(run())
