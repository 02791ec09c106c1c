"""The generated policy: a small MLP described by a :class:`PolicySpec` and a flat float32 vector.

This module is numpy-only on purpose: the controller process imports it and must never
import torch. The batched torch forward used in training lives in ``warpd_core.models.policy_torch``.
"""

from warpd_core.policy.spec import ACTIVATIONS, MLPPolicy, PolicySpec

__all__ = ["ACTIVATIONS", "MLPPolicy", "PolicySpec"]
