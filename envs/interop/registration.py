"""``gridpod/Grid-v0`` in Gymnasium's registry: ``gymnasium.make`` and ``gymnasium.make_vec``.

    import envs.interop                    # registers the id (needs gymnasium installed)
    env = gymnasium.make("gridpod/Grid-v0", case="ieee30", horizon=96)
    envs = gymnasium.make_vec("gridpod/Grid-v0", num_envs=64, case="ieee14")
    env = gymnasium.make("envs.interop:gridpod/Grid-v0")   # Gymnasium's "module:id" form

``make`` gives a ``GridGymEnv`` (wrapped by Gymnasium's order and passive checkers),
``make_vec`` a ``GridVectorEnv`` (the vector entry point: B grids in one jitted call; pass
``vectorization_mode="sync"`` for Gymnasium's ``SyncVectorEnv`` of single envs instead).
Keyword arguments are fields of ``envs.config.default_env_config()`` (``case``, ``horizon``,
``scenario``, ``physics``, ``reward``, ...), except three that shape the single-agent view:
``observation`` ("global" | "agents"), ``team_reward`` ("mean" | "sum" of the agents'
rewards) and ``render_mode`` (only ``None``). Episodes end at the env's own ``horizon``:
the id sets no ``max_episode_steps``. Equal keywords share one built env and its compiled
step (``vectorization_mode="sync"`` builds B envs: they compile once, not B times).
"""

from envs.interop.core import require

require("gymnasium")

import gymnasium  # noqa: E402

ENV_ID = "gridpod/Grid-v0"
VIEW_KEYWORDS = ("observation", "team_reward", "render_mode")


class UnknownEnvKeywordError(ValueError):
    """A keyword that is neither an env config field nor a view option."""


def env_config_from_keywords(**fields):
    """``envs.config.default_env_config()`` with ``fields`` set, each checked by name and type."""
    from envs.config import default_env_config

    config = default_env_config()
    unknown = sorted(set(fields) - set(config.keys()))
    if unknown:
        raise UnknownEnvKeywordError(
            f"{ENV_ID} has no keyword {', '.join(map(repr, unknown))}: the keywords are the fields "
            f"of envs.config.default_env_config() and {', '.join(VIEW_KEYWORDS)}"
        )
    for name, value in fields.items():
        try:
            config[name] = value
        except TypeError:
            expected = type(config[name]).__name__
            raise ValueError(f"{name}={value!r} has the wrong type: expected {expected}") from None
    return config


# make_env results by config JSON: the env object and params are immutable, and the adapters'
# compiled calls are cached per env object, so equal keywords reuse one compilation.
_BUILT_ENVS: dict[str, tuple] = {}
_BUILT_ENVS_KEPT = 8


def built_env(**fields):
    """``(GridEnv, EnvParams)`` for the env config ``fields`` (shared by equal keywords)."""
    from envs.env import make_env

    config = env_config_from_keywords(**fields)
    key = config.to_json()
    if key not in _BUILT_ENVS:
        if len(_BUILT_ENVS) >= _BUILT_ENVS_KEPT:
            _BUILT_ENVS.pop(next(iter(_BUILT_ENVS)))
        _BUILT_ENVS[key] = make_env(config)
    return _BUILT_ENVS[key]


def make_grid_env(observation="global", team_reward="mean", render_mode=None, **fields):
    """``gymnasium.make`` entry point: a ``GridGymEnv`` on the env config ``fields``."""
    from envs.interop.single import GridGymEnv

    return GridGymEnv(
        *built_env(**fields), observation=observation, reward=team_reward, render_mode=render_mode
    )


def make_grid_vector_env(
    num_envs=1, observation="global", team_reward="mean", render_mode=None, **fields
):
    """``gymnasium.make_vec`` vector entry point: a ``GridVectorEnv`` of ``num_envs`` grids."""
    from envs.interop.vector import GridVectorEnv

    return GridVectorEnv(
        *built_env(**fields),
        num_envs=num_envs,
        observation=observation,
        reward=team_reward,
        render_mode=render_mode,
    )


def register_envs() -> None:
    """Add ``ENV_ID`` to Gymnasium's registry (idempotent)."""
    if ENV_ID in gymnasium.registry:
        return
    gymnasium.register(
        id=ENV_ID,
        entry_point=f"{__name__}:make_grid_env",
        vector_entry_point=f"{__name__}:make_grid_vector_env",
    )
