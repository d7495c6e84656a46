"""Local stand-ins: moto's DynamoDB server, the upstream simulator, the embedded stack that runs them.

They need the optional extra ``pollen[local]`` (moto, waitress, werkzeug), which the product package does not pull:
this module imports none of them, so an entry point can check for the extra before it imports the rest.
"""

from __future__ import annotations

import importlib.util

from pollen.errors import ConfigError

#: The extra that carries the embedded stack, and how to install it.
LOCAL_EXTRA_INSTALL = "pip install 'pollen[local]'"
#: The modules the embedded stack imports (moto and waitress in the moto server's process, werkzeug in the simulator).
LOCAL_EXTRA_MODULES = ("moto", "waitress", "werkzeug")


def missing_local_modules() -> list[str]:
    """The modules of the extra ``pollen[local]`` that cannot be imported here (found without importing them)."""
    missing = []
    for name in LOCAL_EXTRA_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken or blocked package counts as missing
            found = False
        if not found:
            missing.append(name)
    return missing


def require_local_extra(command: str) -> None:
    """Raise a one-line ConfigError (exit status 2) naming the extra when the embedded stack cannot run."""
    missing = missing_local_modules()
    if missing:
        raise ConfigError(
            f"{command} needs the embedded stack, which is not installed ({', '.join(missing)} missing): "
            f"{LOCAL_EXTRA_INSTALL}"
        )
