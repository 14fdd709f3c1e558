"""Old public names kept for one release, with a FutureWarning that names the new one."""

from __future__ import annotations

import warnings
from collections.abc import Callable

# Why the one-step OPF's entry points were renamed.
MYOPIC_RENAME = "one word, 'myopic', for the one-step OPF"


def renamed_attributes(
    namespace: dict, renames: dict[str, str], why: str = ""
) -> Callable[[str], object]:
    """A module ``__getattr__`` that serves each old name of ``renames`` as its new name in
    ``namespace`` (the module's ``globals()``), warning at each access; ``why`` is added to
    the message."""
    module = namespace["__name__"]

    def __getattr__(name: str):
        if name in renames:
            new = renames[name]
            warnings.warn(
                f"{module}.{name} is renamed {new}" + (f" ({why})" if why else ""),
                FutureWarning,
                stacklevel=2,
            )
            return namespace[new]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
