"""Simulated environments.

- ``pusht``: wrapper over gym-pusht's PushT (state observations), physics state
  capture/restore, the paper's block perturbation, rendering. No torch.
- ``pusht_expert``: a scripted, look-ahead PushT expert and demonstration generation.
- ``render``: writing rollout videos (GIF/MP4) with event overlays.
- ``cli``: ``warpd expert ...`` subcommands.
- ``robosuite_env``, ``robosuite_expert``, ``robosuite_cli`` (``warpd expert robosuite``): robosuite Lift / Can.

The PushT names below are loaded on first use, so importing another submodule (robosuite)
does not import gym-pusht and pygame.
"""

from __future__ import annotations

import importlib

_PUSHT_EXPORTS = ("BlockPerturbation", "PhysicsState", "PushTEnv", "StepResult", "score_of")
__all__ = list(_PUSHT_EXPORTS)


def __getattr__(name: str):
    if name in _PUSHT_EXPORTS:
        return getattr(importlib.import_module("warpd_core.envs.pusht"), name)
    raise AttributeError(f"module 'warpd_core.envs' has no attribute {name!r}")
