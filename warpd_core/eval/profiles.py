"""Evaluation profiles: named PushT protocols (no heavy imports, so ``warpd --help`` can list them)."""

from __future__ import annotations

from typing import Any

# The one table of evaluation profiles, for `warpd eval pusht` and `warpd compare pusht` alike: both
# cover the paper's Figure-3 grid; they differ only in how many episodes fill each cell.
PROFILES: dict[str, dict[str, Any]] = {
    # the default: 10 env seeds x 1 repeat = 240 episodes per method, minutes on a laptop CPU
    "quick": {"n_seeds": 10, "repeats": 1, "horizons": (16, 32, 64, 128),
              "magnitudes": (0.0, 20.0, 40.0, 60.0, 80.0, 100.0)},
    # the paper's protocol (section 4.1, Table 3), one training seed: 12,000 episodes per method, hours
    "paper": {"n_seeds": 50, "repeats": 10, "horizons": (16, 32, 64, 128),
              "magnitudes": (0.0, 20.0, 40.0, 60.0, 80.0, 100.0)},
}
DEFAULT_PROFILE = "quick"


def profile_help() -> str:
    """One line per profile for ``--help``."""
    return "; ".join(f"{name}: {p['n_seeds']} seeds x {p['repeats']} repeats x horizons "
                     f"{' '.join(str(h) for h in p['horizons'])} x magnitudes "
                     f"{' '.join(f'{m:g}' for m in p['magnitudes'])} px"
                     for name, p in PROFILES.items())
