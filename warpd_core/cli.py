"""``warpd`` command line: one argparse tree assembled from subcommand modules.

Each module path in :data:`SUBCOMMANDS` exposes ``register(subparsers)`` which adds its
parsers and sets ``func`` (called with the parsed args, returns an exit code). Modules are
imported when the CLI starts but each import is guarded: a module whose optional
dependencies are missing is reported on ``--help`` instead of breaking every other command.
Heavy imports (torch, ...) belong inside the command functions, so ``warpd --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from warpd_core.cli_args import Parser

SUBCOMMANDS = [
    "warpd_core.demo_cli",
    "warpd_core.train.cli",
    "warpd_core.export.cli",
    "warpd_core.data.cli",
    "warpd_core.data.record_cli",
    "warpd_core.envs.cli",
    "warpd_core.eval.cli",
    "warpd_core.eval.compare",
    "warpd_core.eval.metaworld_compare",
    "warpd_core.analysis.cli",
    "warpd_core.bench.cli",
]


class _VersionAction(argparse.Action):
    """``--version``: looked up when asked for (package metadata, git), not on every start."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from warpd_core.version import describe

        print(describe())  # stdout, as argparse's own version action
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="warpd", description="WARPD: generated closed-loop policies (training, export, runtime tools)")
    parser.add_argument("--version", action=_VersionAction, help="print the version (and git revision of a checkout) and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    broken = []
    for path in SUBCOMMANDS:
        try:
            importlib.import_module(path).register(sub)
        except Exception as exc:  # noqa: BLE001 - one broken optional module must not kill the CLI
            broken.append(f"{path} ({type(exc).__name__}: {exc})")
    if broken:
        parser.epilog = "unavailable command modules: " + "; ".join(broken)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:  # config / bundle / checkpoint errors carry the file and field
        print(f"warpd {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
