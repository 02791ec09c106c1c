"""Flags that mean the same in every ``warpd`` subcommand, defined once.

``--no-progress`` turns off progress bars; ``--threads`` sets torch's intra-op threads (the
generator / policy evaluation default is 1: the models are small and extra threads cost more in
synchronisation than they save, much more on a busy machine); ``--horizon`` is always the action
horizon (control steps per generated policy), episode lengths are ``--max-steps``.
"""

from __future__ import annotations

import argparse


def add_progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_threads_flag(p: argparse.ArgumentParser, default: int | None = 1) -> None:
    what = "torch's choice" if default is None else str(default)
    p.add_argument("--threads", type=int, default=default,
                   help=f"torch intra-op CPU threads (default {what}; 1 is often fastest for these small models, "
                        "and always on a busy machine)")


def set_torch_threads(n: int | None) -> None:
    """Apply ``--threads`` (None or <= 0: leave torch's default)."""
    if n is not None and n > 0:
        import torch  # noqa: PLC0415

        torch.set_num_threads(int(n))


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """``--help`` shows each option's default, unless its help already says it or there is none
    (None, False, an empty list: "off")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or not action.option_strings or default is argparse.SUPPRESS
                or default is None or default is False or default == []):
            return text
        shown = " ".join(str(d) for d in default) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown})".strip()


class Parser(argparse.ArgumentParser):
    """The ``warpd`` parser class: every subcommand's parser (``add_subparsers`` makes them of
    the parent's class) shows defaults in ``--help``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)
