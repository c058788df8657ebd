"""Argument checks shared across the package: one message per kind of mistake, naming the argument and its value.

    from keras_gen import checks
    n = checks.integer(n, "n", minimum=1)          # ValueError: `n` must be a positive integer, got 0.
    method = checks.choice(method, "method", METHODS)
"""

import numbers

__all__ = ["integer", "choice"]


def integer(value, name, minimum=None, allow_none=False):
    """``value`` as an ``int`` if it is an integer (not a bool) of at least ``minimum``.

    Args:
        value: what the caller passed.
        name: the argument's name, for the message.
        minimum: the smallest valid value (None: any integer).
        allow_none: None passes through unchanged.

    Raises:
        ValueError: ``"`name` must be an integer >= minimum, got value."`` (for a minimum of 1: "a positive
            integer"; of 0: "a non-negative integer").
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (minimum is not None and value < minimum):
        valid = {None: "an integer", 0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
        raise ValueError(f"`{name}` must be {valid}{' or None' if allow_none else ''}, got {value!r}.")
    return int(value)


def choice(value, name, valid):
    """``value`` if it is one of ``valid``, else a ValueError listing them."""
    if value not in valid:
        raise ValueError(f"Unknown {name} {value!r}. Valid: {', '.join(map(repr, valid))}.")
    return value
