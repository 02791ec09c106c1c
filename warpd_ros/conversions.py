"""Message <-> warpd_core object conversions (no math, no copies of the weight vector)."""

from __future__ import annotations

import array

import numpy as np

from warpd_core.runtime.controller import PolicyCandidate
from warpd_ros.msg import PolicyWeights


def candidate_from_msg(msg: PolicyWeights) -> PolicyCandidate:
    """Zero-copy view of the message's float32 weights."""
    return PolicyCandidate(
        model_id=msg.model_id,
        generation=int(msg.generation),
        generator_epoch=int(msg.generator_epoch),
        layer_sizes=tuple(int(s) for s in msg.layer_sizes),
        activation=msg.activation,
        weights=np.frombuffer(msg.weights, dtype=np.float32),
        horizon=int(msg.horizon),
        obs_seq=int(msg.obs_seq),
        episode=int(msg.episode),
        sim_epoch=int(msg.sim_epoch),
        task_id=int(msg.task_id),
    )


def float32_array(values: np.ndarray) -> array.array:
    """numpy float32 -> array.array('f') without a Python-level loop (what rosidl stores)."""
    out = array.array("f")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    return out


def float64_array(values: np.ndarray) -> array.array:
    out = array.array("d")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return out
