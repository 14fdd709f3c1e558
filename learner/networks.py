"""Actor and critic networks (flax.linen): inputs ``[..., A, O]`` / ``[..., S]``.

Any leading batch dimensions (grids, or none at init) pass through. Per-agent layers run on
2-D ``[rows, features]`` views: XLA:CPU vectorises elementwise code over the innermost
dimension only and emits 3-D ``[B, A, H]`` LayerNorms and the thin action heads at half
speed or worse, and a ``vmap`` over grids put the typed head's selection on a batch axis that
cost a transpose per layer in the backward pass.

Actor: per-agent MLP encoder (Dense + LayerNorm) -> agent-id and agent-type
embeddings (shared parameters only) -> pre-LayerNorm transformer blocks whose
multi-head attention runs across agents (padded agents are masked out as keys)
-> per-agent-type head giving the mean of a pre-tanh Gaussian; the log std is a
learned state-independent parameter per type (shared) or per agent (independent).

Critic: ``mappo`` encodes the global state once, adds each agent's id/type
embedding and local-observation encoding (an agent-specific centralised value);
``ippo`` sees only the agent's local observation. One value per agent.

With ``parameter_sharing == "independent"`` encoders and heads are
``nn.vmap``-ed over per-agent parameter stacks (attention stays shared: it is
the coordination layer).
"""

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ORTHO_HIDDEN = float(np.sqrt(2.0))


def _dense(features: int, scale: float = ORTHO_HIDDEN) -> nn.Dense:
    return nn.Dense(features, kernel_init=nn.initializers.orthogonal(scale))


def _leading_ones(x: jax.Array, like: jax.Array) -> jax.Array:
    """``x`` with size-1 axes prepended to ``like``'s rank (explicit rank promotion)."""
    return x.reshape((1,) * (like.ndim - x.ndim) + x.shape)


class MLP(nn.Module):
    """Dense -> LayerNorm -> SiLU, ``num_layers`` times."""

    features: int
    num_layers: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        lead = x.shape[:-1]
        x = x.reshape((-1, x.shape[-1]))
        for _ in range(self.num_layers):
            x = nn.silu(nn.LayerNorm()(_dense(self.features)(x)))
        return x.reshape((*lead, self.features))


class Linear(nn.Module):
    """A Dense layer as a module class so it can be ``nn.vmap``-ed."""

    features: int
    scale: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return _dense(self.features, self.scale)(x)


def per_agent(module_cls: type[nn.Module], independent: bool) -> Callable[..., Any]:
    """``module_cls`` applied to ``[..., A, F]``: shared weights, or one weight set per agent."""
    if not independent:
        return module_cls
    return nn.vmap(
        module_cls,
        in_axes=-2,
        out_axes=-2,
        variable_axes={"params": 0},
        split_rngs={"params": True},
    )


class DenseParams(nn.Module):
    """The ``kernel [in, out]`` and ``bias [out]`` an ``nn.Dense`` would create (same names,
    initialisers and order, hence the same values), returned instead of applied."""

    in_features: int
    features: int
    scale: float

    @nn.compact
    def __call__(self) -> tuple[jax.Array, jax.Array]:
        shape = (self.in_features, self.features)
        kernel = self.param("kernel", nn.initializers.orthogonal(self.scale), shape, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        return kernel, bias


class LinearParams(nn.Module):
    """The parameters of ``Linear`` (``Dense_0/kernel``, ``Dense_0/bias``) without applying it."""

    in_features: int
    features: int
    scale: float

    @nn.compact
    def __call__(self) -> tuple[jax.Array, jax.Array]:
        return DenseParams(self.in_features, self.features, self.scale, name="Dense_0")()


class TypedHead(nn.Module):
    """Linear head with one weight set per agent type (shared) or per agent (independent).

    Shared: the K types' weights (``Linear_k``) are concatenated into one ``[H, K * F]``
    matmul applied to every agent's row, and each row keeps its own type's F columns (a
    one-hot weighted sum of K slices): one large kernel instead of K thin ones.
    """

    features: int
    agent_type: tuple[int, ...]
    num_types: int
    independent: bool
    scale: float

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:  # [..., A, H] -> [..., A, features]
        if self.independent:
            return per_agent(Linear, True)(self.features, self.scale)(h)
        weights = [
            LinearParams(h.shape[-1], self.features, self.scale, name=f"Linear_{k}")()
            for k in range(self.num_types)
        ]
        kernel = jnp.concatenate([w for w, _ in weights], axis=1)  # [H, K * F]
        bias = jnp.concatenate([b for _, b in weights])
        num_agents, f = len(self.agent_type), self.features
        lead = h.shape[:-2]
        outs = h.reshape((-1, h.shape[-1])) @ kernel + bias[None]  # [rows = lead x A, K * F]
        # Each agent keeps its own type's F columns: a constant 0/1 matmul on the [lead, A*K*F]
        # view (a one-hot select here ran as scalar code, see the module docstring).
        return (outs.reshape((-1, num_agents * kernel.shape[1])) @ self._type_selection()).reshape(
            (*lead, num_agents, f)
        )

    def _type_selection(self) -> np.ndarray:
        """``[A * K * F, A * F]``: column ``(a, k, f)`` of the K heads -> ``(a, f)`` if a has type k."""
        num_agents, k, f = len(self.agent_type), self.num_types, self.features
        selection = np.zeros((num_agents, k, f, num_agents, f), np.float32)
        for agent, agent_type in enumerate(self.agent_type):
            selection[agent, agent_type, :, agent, :] = np.eye(f, dtype=np.float32)
        return selection.reshape((num_agents * k * f, num_agents * f))


class AgentEmbedding(nn.Module):
    """Agent-id plus agent-type embedding ``[A, H]`` (tells shared weights who is who)."""

    features: int
    agent_type: tuple[int, ...]
    num_types: int

    @nn.compact
    def __call__(self) -> jax.Array:
        num_agents = len(self.agent_type)
        ids = nn.Embed(num_agents, self.features, name="agent_id")(jnp.arange(num_agents))
        types = nn.Embed(self.num_types, self.features, name="agent_type")(
            jnp.asarray(self.agent_type)
        )
        return ids + types


class AttentionBlock(nn.Module):
    """Pre-LayerNorm transformer block across agents; padded agents are never attended to."""

    features: int
    num_heads: int

    @nn.compact
    def __call__(self, h: jax.Array, agent_mask: jax.Array) -> jax.Array:
        mask = nn.make_attention_mask(jnp.ones_like(agent_mask), agent_mask)  # [1, A, A]
        attended = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads, qkv_features=self.features
        )(nn.LayerNorm()(h), mask=mask)
        h = h + attended
        return h + MLP(self.features, 1)(nn.LayerNorm()(h))


class Actor(nn.Module):
    """Per-agent Gaussian parameters (pre-tanh) for one grid."""

    action_dim: int
    agent_type: tuple[int, ...]
    num_types: int
    independent: bool
    hidden_size: int
    num_encoder_layers: int
    num_attention_layers: int
    num_heads: int
    init_log_std: float

    @nn.compact
    def __call__(self, agent_obs: jax.Array, agent_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``agent_obs [..., A, O]``, ``agent_mask [A]`` -> ``(mean, log_std)``, both ``[..., A, U]``."""
        encoder = per_agent(MLP, self.independent)(self.hidden_size, self.num_encoder_layers)
        h = encoder(agent_obs)
        if not self.independent:
            embedding = AgentEmbedding(self.hidden_size, self.agent_type, self.num_types)()
            h = h + _leading_ones(embedding, h)
        for _ in range(self.num_attention_layers):
            h = AttentionBlock(self.hidden_size, self.num_heads)(h, agent_mask)
        h = nn.LayerNorm()(h.reshape((-1, h.shape[-1]))).reshape(h.shape)
        mean = TypedHead(
            self.action_dim, self.agent_type, self.num_types, self.independent, scale=0.01
        )(h)
        rows = len(self.agent_type) if self.independent else self.num_types
        log_std_table = self.param(
            "log_std", nn.initializers.constant(self.init_log_std), (rows, self.action_dim)
        )
        index = jnp.arange(rows) if self.independent else jnp.asarray(self.agent_type)
        return mean, jnp.broadcast_to(log_std_table[index], mean.shape)


class Critic(nn.Module):
    """One value per agent for one grid (``mappo`` centralised or ``ippo`` local)."""

    centralised: bool
    agent_type: tuple[int, ...]
    num_types: int
    independent: bool
    hidden_size: int
    num_encoder_layers: int

    @nn.compact
    def __call__(self, agent_obs: jax.Array, global_state: jax.Array) -> jax.Array:
        """``agent_obs [..., A, O]``, ``global_state [..., S]`` -> ``value [..., A]``."""
        local = per_agent(MLP, self.independent)(self.hidden_size, self.num_encoder_layers)
        h = local(agent_obs)  # [A, H]
        if self.centralised:
            g = MLP(self.hidden_size, self.num_encoder_layers, name="global_encoder")(global_state)
            h = h + g[..., None, :]
        if not self.independent:
            embedding = AgentEmbedding(self.hidden_size, self.agent_type, self.num_types)()
            h = h + _leading_ones(embedding, h)
        h = per_agent(MLP, self.independent)(self.hidden_size, 1)(h)
        value = TypedHead(1, self.agent_type, self.num_types, self.independent, scale=1.0)(h)
        return value[..., 0]
