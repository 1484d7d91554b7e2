"""Config-value checks of the classical methods (``configs/ml/*.yml`` -> ``ppmatting.ml``).

Each returns the value in its canonical type (``int`` or ``float``) or raises :class:`ConfigError`
with one line naming the key and the value it got, so that a typo in a YAML file stops the tool
with ``error: epsilon: must be a positive number, got '1e-7x'`` instead of a numba or SciPy
traceback later.
"""
from ppmatting.utils.errors import ConfigError


def check_positive(name, value, integer=False):
    """A positive number (an integer when ``integer``; bools are refused)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    if integer:
        ok = ok and float(value).is_integer()
    if not ok:
        kind = "positive integer" if integer else "positive number"
        raise ConfigError(f"{name}: must be a {kind}, got {value!r}")
    return int(value) if integer else float(value)


def check_optional_positive(name, value, integer=False):
    """``None`` (the option is off) or a positive number, as :func:`check_positive`."""
    return None if value is None else check_positive(name, value, integer)


def check_non_negative(name, value):
    """A number >= 0 (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{name}: must be a number >= 0, got {value!r}")
    return float(value)


def check_unit_scale(name, value):
    """A scale factor in (0, 1]."""
    scale = check_positive(name, value)
    if scale > 1.0:
        raise ConfigError(f"{name}: must be in (0, 1], got {value!r}")
    return scale


def check_choice(name, value, choices):
    """One of ``choices`` (compared with ``in``)."""
    if value not in choices:
        raise ConfigError(f"{name}: '{value}' is not one of {', '.join(map(str, choices))}")
    return value
