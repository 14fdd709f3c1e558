"""Adapters that let RL libraries drive one gridpod grid through their standard APIs.

* ``GridParallelEnv`` — a PettingZoo ``ParallelEnv`` (one entry per agent, e.g. Ray RLlib's
  ``ParallelPettingZooEnv`` or BenchMARL);
* ``GridGymEnv`` — a Gymnasium ``Env`` with the whole team as one single-agent problem
  (Stable-Baselines3, CleanRL, RLlib single-agent).

Both step ONE grid with the pure ``GridEnv`` compiled once (``envs.interop.core``) and hand
back NumPy. Unlike the pure env they do not reset in place: the step that ends an episode
returns the observation the episode ended with and the caller must call ``reset()``, as
both APIs require. PettingZoo and Gymnasium are optional (``pip install gridpod[interop]``);
they are imported only when one of the classes is first used.
"""

import importlib

_EXPORTS = {"GridParallelEnv": "envs.interop.parallel", "GridGymEnv": "envs.interop.single"}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'envs.interop' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
