"""Parameter declaration, descriptors and validation (every node parameter goes through here).

A parameter is declared with a description and, where it has one, its valid range (in the
descriptor, so ``ros2 param describe`` shows it) and a check. The same checks run twice:

* at set time: :func:`guard` registers an on-set-parameters callback that rejects an invalid
  value -- or, on a configured lifecycle node, any change to a parameter that only takes effect
  at ``configure`` -- with a reason naming the parameter, so SetParameters never reports success
  for something that is not (or not yet) in force;
* when the values are used (``configure``, or a plain node's constructor): :func:`check_all`,
  because values from a params file or ``-p`` never pass through the callback.

A parameter declared with :class:`Required` has no default: a value that only fits one task
(PushT's 512-pixel action range) must not reach a robot whose params file left it out, so
``configure`` fails naming it instead.

A check is ``check(value, get) -> str``: '' when ``value`` is acceptable, else what is wrong
with it (the caller adds the parameter's name). ``get(name)`` is another parameter's value as
it will be after the change, for checks that relate parameters (``action_low <= action_high``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult

Check = Callable[[object, Callable[[str], object]], str]

_CHECKS = "_warpd_param_checks"


@dataclass(frozen=True)
class Required:
    """The default of a parameter that has none: ``kind`` ``int`` or ``list`` (of floats) is its
    type. Until a params file or ``-p`` sets it, :func:`check_all` fails naming it."""

    kind: type

    def check(self, inner: Check | None) -> Check:
        def check(v, get):
            if v is None or (isinstance(v, list) and not v):
                return "required, no default: set it in the params file or with -p"
            return inner(v, get) if inner else ""
        return check


def declare(node, name: str, default, description: str, read_only: bool = False, dynamic_typing: bool = False,
            check: Check | None = None, range: tuple | None = None):
    """Declare ``name`` with a description and return its value.

    ``default``: the value, or :class:`Required` for none (the parameter is declared typed and
    unset). ``range``: ``(low, high)`` for a scalar (inclusive), written into the descriptor's
    FloatingPointRange / IntegerRange and checked like ``check``. ``read_only``: only settable
    at start-up (params file, ``-p``). ``dynamic_typing``: accept any type (e.g. a CPU list given
    as ``cpu_affinity:=1``, which ROS parses as an integer).
    """
    required = default if isinstance(default, Required) else None
    if required is not None:
        description = f"{description} Required (no default)."
        default = {int: 0, list: []}[required.kind]  # the type; never used as a value
    desc = ParameterDescriptor(description=description, read_only=read_only, dynamic_typing=dynamic_typing)
    checks = _checks(node)
    if range is not None:
        lo, hi = range
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            raise TypeError(f"range given for non-numeric parameter {name}")
        if isinstance(default, int):
            desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
        else:
            desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
            desc.additional_constraints = "finite"
        checks[name] = number(lo, hi) if check is None else _both(number(lo, hi), check)
    elif check is not None:
        checks[name] = check
    if required is not None:
        checks[name] = required.check(checks.get(name))
        if required.kind is int:
            from rclpy.parameter import Parameter

            node.declare_parameter(name, Parameter.Type.INTEGER, desc)
            return value_of(node, name)
    if isinstance(default, list) and len(default) == 0:
        # typed empty list: ROS needs a type for an empty array default
        from rclpy.exceptions import ParameterUninitializedException
        from rclpy.parameter import Parameter

        node.declare_parameter(name, Parameter.Type.DOUBLE_ARRAY, desc)
        try:
            value = node.get_parameter(name).value
        except ParameterUninitializedException:
            return []
        return [] if value is None else list(value)
    value = node.declare_parameter(name, default, desc).value
    return list(value) if isinstance(value, (list, tuple)) or hasattr(value, "tolist") else value


def declare_cpu_list(node, name: str, description: str) -> str:
    """Declare a CPU-list parameter ('' = off; read at start-up only) and return it as text. ROS
    parses ``name:=1`` as an integer, so any type is accepted; a malformed list raises ValueError
    naming ``name``."""
    from warpd_ros.sched import parse_cpus

    text = str(declare(node, name, "", description, read_only=True, dynamic_typing=True))
    parse_cpus(text, name)
    return text


def value_of(node, name: str):
    """Current value of ``name``; [] for an empty array parameter nobody set; lists as lists."""
    from rclpy.exceptions import ParameterUninitializedException

    try:
        v = node.get_parameter(name).value
    except ParameterUninitializedException:
        return []
    return list(v) if isinstance(v, (list, tuple)) or hasattr(v, "tolist") else v


def check_all(node) -> None:
    """Run every registered check on the current values; ValueError naming the first bad one."""
    get = lambda n: value_of(node, n)  # noqa: E731
    for name, check in _checks(node).items():
        reason = check(get(name), get)
        if reason:
            raise ValueError(f"parameter {name}: {reason}")


def guard(node, configure_only: Callable[[str], bool] = lambda name: False,
          configured: Callable[[], bool] = lambda: False) -> None:
    """Reject, at set time, values that fail their check, and changes to parameters for which
    ``configure_only(name)`` holds while ``configured()``; name the parameter in type errors."""
    _name_type_errors(node)

    def on_set(params) -> SetParametersResult:
        proposed = {p.name: p.value for p in params}
        get = lambda n: _as_list(proposed[n]) if n in proposed else value_of(node, n)  # noqa: E731
        for p in params:
            check = _checks(node).get(p.name)
            reason = check(get(p.name), get) if check else ""
            if reason:
                return SetParametersResult(successful=False, reason=f"parameter {p.name}: {reason}")
            if configured() and configure_only(p.name):
                return SetParametersResult(successful=False, reason=(
                    f"parameter {p.name} takes effect at configure: deactivate and clean up "
                    f"{node.get_name()} first, then set it and configure again"))
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)


# -- checks ---------------------------------------------------------------------------------------
def number(lo: float = -math.inf, hi: float = math.inf, lo_open: bool = False) -> Check:
    """A finite number in [lo, hi] (``lo_open``: (lo, hi])."""
    def check(v, get):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"expected a number, got {v!r}"
        if not math.isfinite(v):
            return f"must be finite, got {v}"
        if v < lo or v > hi or (lo_open and v == lo):
            return f"must be in {'(' if lo_open else '['}{lo}, {hi}], got {v}"
        return ""
    return check


def choice(*options: str) -> Check:
    def check(v, get):
        return "" if v in options else f"must be one of {' | '.join(options)}, got {v!r}"
    return check


def vector(size_of: str | None = None, empty: bool = False, broadcast: bool = True, positive: bool = False) -> Check:
    """A list of finite numbers: of ``get(size_of)`` entries (1 broadcasts when ``broadcast``);
    ``empty``: [] allowed; ``positive``: every entry > 0."""
    def check(v, get):
        v = _as_list(v)
        if not v:
            return "" if empty else "must not be empty"
        bad = [x for x in v if not math.isfinite(float(x))]
        if bad:
            return f"entries must be finite, got {v}"
        if positive and any(float(x) <= 0 for x in v):
            return f"entries must be positive, got {v}"
        if size_of is not None:
            n = get(size_of)
            ok = len(v) == n or (broadcast and len(v) == 1)
            if isinstance(n, int) and not ok:
                return f"must have {'1 or ' if broadcast else ''}{n} entries ({size_of}), got {len(v)}"
        return ""
    return check


def _both(a: Check, b: Check) -> Check:
    return lambda v, get: a(v, get) or b(v, get)


def _as_list(v):
    return list(v) if isinstance(v, (list, tuple)) or hasattr(v, "tolist") else v


def _checks(node) -> dict:
    if not hasattr(node, _CHECKS):
        setattr(node, _CHECKS, {})
    return getattr(node, _CHECKS)


def _name_type_errors(node) -> None:
    """rclpy answers a SetParameters of the wrong type with "Wrong parameter type, expected '2'
    got '4'" (type enum values, no name). Wrap the node's descriptor check so the reason names
    the parameter and the types; the prefix is kept, rclpy's own set_parameters keys on it."""
    from rclpy.parameter import Parameter

    apply = node._apply_descriptor  # rclpy 9 (Kilted): the one place types are compared

    def apply_named(parameter, descriptor=None, check_read_only=True):
        result = apply(parameter, descriptor, check_read_only)
        if not result.successful and result.reason.startswith("Wrong parameter type"):
            want = descriptor if descriptor is not None else node.describe_parameter(parameter.name)
            result.reason = (f"Wrong parameter type for parameter {parameter.name}: expected "
                             f"{Parameter.Type(want.type).name.lower()}, got {parameter.type_.name.lower()}")
        return result

    node._apply_descriptor = apply_named
