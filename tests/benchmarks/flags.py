"""Stand-ins for a benchmark command's parsed absl flags: a ``{name: flag}`` dict whose values
the command's checks read as ``flag.value``."""

from types import SimpleNamespace


def parsed_flags(defaults: dict, **changes) -> dict:
    """``defaults`` with ``changes``, each value as a parsed flag (``.value``)."""
    return {name: SimpleNamespace(value=value) for name, value in (defaults | changes).items()}
