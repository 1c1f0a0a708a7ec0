"""``factory-twin``: the command line, one module per command group.

``validate`` (validate.py), ``simulate`` (simulate.py), ``optimize`` (optimize.py), ``study`` and
``grid-study`` (study.py), ``dashboard`` (dashboard.py), ``flex-agent`` and ``grid-signal`` (flex.py),
``emulate-bms`` and ``connect`` (dsx.py), ``openadr-ven`` (openadr.py), ``emulate-bmc`` and ``steer``
(redfish.py), ``topology`` (topology.py). What they share (option types and groups, the deprecated spellings,
output checks, exit statuses) is in options.py. Each module adds its commands with ``add_parsers`` and imports the
twin, the optimizer or a link only when its command runs.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from factory_twin import __version__
from factory_twin.cli import dashboard, dsx, flex, openadr, optimize, redfish, simulate, study, topology, validate
from factory_twin.cli.options import (
    DEFAULT_FACILITY,
    EXIT_ERROR,
    EXIT_FAILED_PIECES,
    EXIT_INTERRUPTED,
    EXIT_MISSED_TARGET,
    builtin_names,
)

# in the order of --help
COMMAND_GROUPS = (validate, simulate, optimize, study, dashboard, flex, openadr, dsx, redfish, topology)


def main(argv: list[str] | None = None) -> int:
    """Run ``factory-twin`` with ``argv`` (default: the process's arguments); return the exit status."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _show_warning
        parser = build_parser()
        args = parser.parse_args(argv)
        if not hasattr(args, "run"):
            parser.print_help()
            return 2
        try:
            return args.run(args)
        except (ValueError, OSError) as e:  # SpecError is a ValueError; OSError: a file, a broker: the message whole
            print(f"error: {e}", file=sys.stderr)
            return EXIT_ERROR
        except RuntimeError as e:  # failed segments of a long run (the finished ones are kept for --resume)
            print(f"error: {e}", file=sys.stderr)
            return EXIT_FAILED_PIECES
        except KeyboardInterrupt:  # Ctrl-C: what finished is on disk (a segmented run continues with --resume)
            print("interrupted: finished work is kept; a --duration run continues with --resume", file=sys.stderr)
            return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (``args.run(args)`` runs the chosen one)."""
    p = argparse.ArgumentParser(
        prog="factory-twin",
        description="Digital twin of a liquid-cooled AI factory.",
        epilog=f"Built-in facilities: {builtin_names('facilities')}; the default is {DEFAULT_FACILITY}, the 100 MW "
        "reference campus. Built-in scenarios: " + builtin_names("scenarios") + ".",
    )
    p.add_argument("--version", action="version", version=f"factory-twin {__version__}")
    sub = p.add_subparsers(title="commands")
    for group in COMMAND_GROUPS:
        group.add_parsers(sub)
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


__all__ = ["EXIT_INTERRUPTED", "EXIT_MISSED_TARGET", "build_parser", "main"]
