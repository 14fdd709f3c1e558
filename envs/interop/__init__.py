"""Adapters that let RL libraries drive one gridpod grid through their standard APIs.

* ``GridParallelEnv`` — a PettingZoo ``ParallelEnv`` (one entry per agent, e.g. Ray RLlib's
  ``ParallelPettingZooEnv`` or BenchMARL);
* ``GridGymEnv`` — a Gymnasium ``Env`` with the whole team as one single-agent problem
  (Stable-Baselines3, CleanRL, RLlib single-agent);
* ``GridVectorEnv`` — a Gymnasium ``VectorEnv`` of B such grids stepped by one jitted,
  vmapped call (``envs.interop.vector``).

Importing this package registers ``gridpod/Grid-v0`` with Gymnasium when Gymnasium is
installed (``gymnasium.make`` / ``gymnasium.make_vec``, see ``envs.interop.registration``).

The first two step ONE grid with the pure ``GridEnv`` compiled once (``envs.interop.core``)
and hand back NumPy. Unlike the pure env they do not reset in place: the step that ends an
episode returns the observation the episode ended with and the caller must call
``reset()``, as both APIs require. PettingZoo and Gymnasium are optional (``pip install
gridpod[interop]``); PettingZoo is imported only when ``GridParallelEnv`` is first used.
All three reject NaN/inf actions with ``NonFiniteActionError`` (a ``ValueError``).
"""

import importlib
import importlib.util

_EXPORTS = {
    "GridParallelEnv": "envs.interop.parallel",
    "GridGymEnv": "envs.interop.single",
    "GridVectorEnv": "envs.interop.vector",
}

__all__ = list(_EXPORTS)

if importlib.util.find_spec("gymnasium") is not None:
    from envs.interop.registration import register_envs

    register_envs()


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'envs.interop' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
