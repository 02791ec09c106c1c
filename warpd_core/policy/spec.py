"""Policy spec <-> flat float32 vector, and the numpy forward the controller runs.

Flat layout (the same order hypnettorch's ``HMLP`` emits for ``target_shapes`` and
``hypnettorch.mnets.MLP.param_shapes``): for each layer ``l`` in order,
``W_l`` of shape ``(out_l, in_l)`` row-major, then ``b_l`` of shape ``(out_l,)``.
Hidden layers use ``activation``; the output layer is linear.

Any affine normalisation of observations and actions is folded into the first and last
layers by the generator (see :meth:`PolicySpec.fold_affine`), so the controller maps raw
observations to raw actions and needs no statistics of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# Activation names are part of the wire format (PolicyWeights.activation).
ACTIVATIONS = ("relu", "tanh", "elu", "gelu_tanh", "identity")


@dataclass(frozen=True)
class PolicySpec:
    """Architecture of a generated MLP policy.

    Attributes:
        in_dim: observation size.
        hidden: hidden layer widths, e.g. ``(256, 256)``.
        out_dim: action size.
        activation: hidden activation, one of :data:`ACTIVATIONS`.
    """

    in_dim: int
    hidden: tuple[int, ...]
    out_dim: int
    activation: str = "relu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        for name, value in (("in_dim", self.in_dim), ("out_dim", self.out_dim)):
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"PolicySpec.{name} must be a positive int, got {value!r}")
        if any(h <= 0 for h in self.hidden):
            raise ValueError(f"PolicySpec.hidden must hold positive widths, got {self.hidden!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"PolicySpec.activation must be one of {ACTIVATIONS}, got {self.activation!r}"
            )

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """All layer widths including input and output, e.g. ``(5, 256, 256, 2)``."""
        return (int(self.in_dim), *self.hidden, int(self.out_dim))

    @property
    def target_shapes(self) -> list[list[int]]:
        """Parameter shapes in flat order, as hypnettorch's ``HMLP(target_shapes=...)`` takes them."""
        sizes = self.layer_sizes
        shapes: list[list[int]] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            shapes.append([fan_out, fan_in])
            shapes.append([fan_out])
        return shapes

    @property
    def n_weights(self) -> int:
        """Length of the flat parameter vector."""
        sizes = self.layer_sizes
        return int(sum(o * i + o for i, o in zip(sizes[:-1], sizes[1:])))

    @classmethod
    def from_layer_sizes(cls, sizes: Sequence[int], activation: str = "relu") -> "PolicySpec":
        if len(sizes) < 2:
            raise ValueError(f"layer sizes need at least input and output, got {list(sizes)!r}")
        return cls(int(sizes[0]), tuple(int(s) for s in sizes[1:-1]), int(sizes[-1]), activation)

    def to_dict(self) -> dict:
        return {
            "in_dim": int(self.in_dim),
            "hidden": list(self.hidden),
            "out_dim": int(self.out_dim),
            "activation": self.activation,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "PolicySpec":
        return cls(int(d["in_dim"]), tuple(d["hidden"]), int(d["out_dim"]), str(d.get("activation", "relu")))

    def unflatten(self, flat: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Views ``[(W_l (out, in), b_l (out,)), ...]`` into ``flat`` (no copy)."""
        flat = np.asarray(flat)
        if flat.ndim != 1 or flat.shape[0] != self.n_weights:
            raise ValueError(
                f"flat weights must have shape ({self.n_weights},) for layers {self.layer_sizes}, "
                f"got {flat.shape}"
            )
        layers = []
        off = 0
        sizes = self.layer_sizes
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            w = flat[off : off + fan_out * fan_in].reshape(fan_out, fan_in)
            off += fan_out * fan_in
            b = flat[off : off + fan_out]
            off += fan_out
            layers.append((w, b))
        return layers

    def flatten(self, layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Inverse of :meth:`unflatten`; returns a new float32 vector."""
        parts = []
        sizes = self.layer_sizes
        if len(layers) != len(sizes) - 1:
            raise ValueError(f"expected {len(sizes) - 1} layers, got {len(layers)}")
        for (w, b), fan_in, fan_out in zip(layers, sizes[:-1], sizes[1:]):
            w = np.asarray(w, dtype=np.float32)
            b = np.asarray(b, dtype=np.float32)
            if w.shape != (fan_out, fan_in) or b.shape != (fan_out,):
                raise ValueError(f"layer shapes {w.shape}/{b.shape} != ({fan_out}, {fan_in})/({fan_out},)")
            parts += [w.ravel(), b]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def fold_affine(
        self,
        flat: np.ndarray,
        obs_scale: np.ndarray,
        obs_offset: np.ndarray,
        act_scale: np.ndarray,
        act_offset: np.ndarray,
    ) -> np.ndarray:
        """Fold normalisation into the first and last layer.

        The trained network sees ``x_n = obs_scale * obs + obs_offset`` and emits ``y_n`` with
        ``action = act_scale * y_n + act_offset``. The returned flat vector maps raw ``obs`` to
        raw ``action`` directly. Works on ``(n_weights,)``; computed in float64, stored float32.
        """
        layers = [(w.astype(np.float64), b.astype(np.float64)) for w, b in self.unflatten(flat)]
        obs_scale = np.asarray(obs_scale, np.float64).reshape(self.in_dim)
        obs_offset = np.asarray(obs_offset, np.float64).reshape(self.in_dim)
        act_scale = np.asarray(act_scale, np.float64).reshape(self.out_dim)
        act_offset = np.asarray(act_offset, np.float64).reshape(self.out_dim)
        w0, b0 = layers[0]
        # W0 (s*obs + o) + b0 = (W0 * s) obs + (W0 o + b0)
        layers[0] = (w0 * obs_scale[None, :], w0 @ obs_offset + b0)
        wl, bl = layers[-1]
        # a * (Wl h + bl) + c = (a[:,None] * Wl) h + (a*bl + c)
        layers[-1] = (act_scale[:, None] * wl, act_scale * bl + act_offset)
        return self.flatten(layers)


def _apply_activation(name: str, x: np.ndarray) -> None:
    """In place, no allocation for relu/tanh/identity (the controller's hot path)."""
    if name == "relu":
        np.maximum(x, 0.0, out=x)
    elif name == "tanh":
        np.tanh(x, out=x)
    elif name == "elu":
        neg = x < 0
        x[neg] = np.expm1(x[neg])
    elif name == "gelu_tanh":
        x[...] = 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))
    elif name == "identity":
        pass
    else:  # pragma: no cover - PolicySpec validates the name
        raise ValueError(f"unknown activation {name!r}")


class MLPPolicy:
    """Numpy forward of one generated policy on preallocated buffers.

    ``act(obs)`` writes into and returns an internal buffer: copy it if you keep it.
    Weights are copied in at construction (the flat vector may be reused by the caller).

    ``act`` allocates nothing (measured with tracemalloc by ``warpd bench controller``):
    ``np.dot(W, x, out=...)`` calls BLAS directly where ``np.matmul(..., out=...)`` builds a
    gufunc iterator on every call, and ReLU compares against a preallocated zero vector
    because a Python scalar operand is converted to a fresh 0-d array each time.
    """

    __slots__ = ("spec", "flat", "_layers", "_bufs", "_in", "_plan")

    def __init__(self, spec: PolicySpec, flat: np.ndarray):
        self.spec = spec
        self.flat = np.array(flat, dtype=np.float32, copy=True)
        # Pre-transpose is unnecessary: buf = W @ x uses the row-major W directly.
        self._layers = spec.unflatten(self.flat)
        self._in = np.zeros(spec.in_dim, dtype=np.float32)
        self._bufs = [np.zeros(o, dtype=np.float32) for o in spec.layer_sizes[1:]]
        last = len(self._layers) - 1
        # (W, b, out buffer, zeros for ReLU or None, apply the activation?) per layer
        relu = spec.activation == "relu"
        self._plan = tuple(
            (w, b, out, np.zeros_like(out) if relu else None, i != last)
            for i, ((w, b), out) in enumerate(zip(self._layers, self._bufs))
        )

    def act(self, obs: np.ndarray) -> np.ndarray:
        """obs (in_dim,) -> action (out_dim,) float32, in an internal buffer."""
        np.copyto(self._in, obs, casting="unsafe")
        x = self._in
        for w, b, out, zeros, hidden in self._plan:
            np.dot(w, x, out=out)
            out += b
            if hidden:
                if zeros is not None:
                    np.maximum(out, zeros, out=out)
                else:
                    _apply_activation(self.spec.activation, out)
            x = out
        return x

    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        """obs (B, in_dim) -> actions (B, out_dim) float32 (allocates; for evaluation, not the hot path)."""
        x = np.asarray(obs, dtype=np.float32)
        last = len(self._layers) - 1
        for i, (w, b) in enumerate(self._layers):
            x = x @ w.T + b
            if i != last:
                _apply_activation(self.spec.activation, x)
        return x
