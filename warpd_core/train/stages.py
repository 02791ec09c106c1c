"""Which stage wrote a model directory: the one table every loader and evaluator reads.

A model directory is either an export bundle (``bundle.json``: kind ``warpd``) or a training
checkpoint (``last.json``, whose ``stage`` field names the ``warpd train`` command that wrote
it). :data:`STAGES` says what each stage is for; :func:`model_kind` reads a directory's kind
and checks it against what the caller can use, with errors naming the file and the field.
Torch-free: ``warpd compare --help`` and the evaluators read it before any model loads.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Iterable, Optional

BUNDLE = "warpd"  # the kind of an export bundle directory


@dataclass(frozen=True)
class Stage:
    """One training stage.

    Attributes:
        name: the ``stage`` field of its checkpoint JSON (``Trainer.stage``).
        baseline: a compared method (``warpd compare`` / ``warpd eval --method``).
        chunk: executes an action chunk open loop, so a model serves only the horizon it was
            trained at (its ``config.horizon``).
        encoder: its encoder gives the latents of ``warpd train diffusion --vae DIR``.
    """

    name: str
    baseline: bool = False
    chunk: bool = False
    encoder: bool = False


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("vae", encoder=True),
    Stage("diffusion"),
    Stage("mlp", baseline=True),
    Stage("dp", baseline=True, chunk=True),
    Stage("ldp", baseline=True, chunk=True, encoder=True),
)}
BASELINES = tuple(n for n, s in STAGES.items() if s.baseline)
CHUNK_STAGES = tuple(n for n, s in STAGES.items() if s.chunk)
ENCODER_STAGES = tuple(n for n, s in STAGES.items() if s.encoder)


def model_kind(path: str, accept: Iterable[str]) -> tuple[str, Optional[dict]]:
    """(kind, checkpoint metadata) of the model directory ``path``: (``warpd``, None) when it
    holds ``bundle.json``, else (the ``stage`` of ``last.json``, its fields). ValueError naming
    the file when there is neither, ``last.json`` is unreadable, or the kind is not in ``accept``."""
    accept = tuple(accept)
    if os.path.isfile(os.path.join(path, "bundle.json")):
        if BUNDLE not in accept:
            raise ValueError(f"{path}: an export bundle (bundle.json); expected a checkpoint of stage "
                             f"{' | '.join(accept)}")
        return BUNDLE, None
    meta_path = os.path.join(path, "last.json")
    stages = "|".join(a for a in accept if a != BUNDLE)
    if not os.path.isfile(meta_path):
        raise ValueError(f"{path}: neither bundle.json (warpd export) nor last.json (warpd train {stages})")
    try:
        with open(meta_path, encoding="utf-8") as fh:
            meta = json.load(fh)
        stage = meta.get("stage")
    except (OSError, ValueError, AttributeError) as exc:
        raise ValueError(f"{meta_path}: unreadable checkpoint metadata ({exc})") from None
    if stage not in accept or stage == BUNDLE:
        raise ValueError(f"{meta_path}: field 'stage' is {stage!r}, expected one of {', '.join(stages.split('|'))}")
    return stage, meta


def check_stage(meta: dict, path: str, stage: str) -> None:
    """ValueError naming ``path`` unless the checkpoint metadata ``meta`` is of ``stage``."""
    if meta.get("stage") != stage:
        raise ValueError(f"{path}: field 'stage' is {meta.get('stage')!r}, expected {stage!r}")
