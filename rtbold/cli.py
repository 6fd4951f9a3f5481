"""The ``rtbold`` command line: one subcommand per job.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``, which registers the
parser and sets ``func`` to a callable taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from . import __version__

#: Subcommand modules, in the order ``rtbold --help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "simulator.cli",
    "convert",
    "training.cli",
    "evaluate",
    "player.replay",
    "stream.run",
    "scanner.export",
    "calibration.cli",
    "gui.cli",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtbold",
        description="Real-time prediction of whole-brain fMRI (DiFuMo regions) from scalp EEG.",
    )
    parser.add_argument("--version", action="version", version=f"rtbold {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-v info, -vv debug)")
    parser.add_argument("--lsl-config", default=None, metavar="FILE",
                        help="liblsl configuration file (lsl_api.cfg) to load before any LSL call; "
                             "'loopback' for the packaged machine-only settings")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"rtbold.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.lsl_config is not None:
        from .lslconfig import apply_lsl_config

        apply_lsl_config(args.lsl_config)
    if getattr(args, "func", None) is None:
        if "gui.cli" in COMMAND_MODULES:  # `rtbold` alone opens the window
            args = parser.parse_args([*(argv or sys.argv[1:]), "gui"])
        else:
            parser.print_help()
            return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        logging.getLogger("rtbold").debug("error", exc_info=True)
        print(f"rtbold {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
