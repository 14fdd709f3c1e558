"""Compute something only for the grids of a batch that need it.

``compute_where(fn, needed, fallback, *args)`` is ``fn(*args) if needed else fallback`` for one
grid. Under ``jax.vmap`` (a ``custom_vmap`` rule) a plain ``jnp.where`` would evaluate ``fn``
for every grid of the batch; here the grids that need it are gathered
``max(ceil(B / CHUNKS), MIN_CHUNK)`` at a time, ``fn`` runs on those rows only (a
``lax.while_loop``, usually a few rounds) and the results are scattered over the fallback. That
is what makes work that a few grids need per step cheap for the whole batch: cascade rounds
after the first, the auto-reset of finished episodes, the wider outage tiers of the DC flow,
the second Newton pass of the AC flow.

``fn`` must be a pure function of its arguments: every batched value it uses must be passed in
``args`` (``custom_vmap`` does not batch values closed over from an enclosing ``vmap``).

``lapack_batch_safe(fn, flops_per_call)`` is ``fn`` whose ``vmap`` on CPU runs the batch in
chunks small enough that each dense factorisation inside stays on its calling thread; see its
docstring for the jaxlib deadlock it avoids.
"""

import jax
import jax.numpy as jnp

# A batch of B grids is handled ceil(B / 64) needing grids at a time: a round costs ``fn`` for
# its whole chunk however few grids need it, and rounds are cheap, so small chunks waste less
# (measured against 16 and 256 chunks: benchmarks/README.md).
CHUNKS = 64
# A chunk holds at least this many grids. Small, for the same reason: with 32, a batch of 64
# ieee118 grids ran the dense 118-bus solve for 32 grids whenever one needed it.
MIN_CHUNK = 2
# jaxlib's CPU LAPACK kernels (Cholesky, LU) run a batched call inline below this many flops
# (their own estimate of one call's work) and split it over XLA's thread pool above it.
LAPACK_INLINE_FLOPS = 200_000


def compute_where(fn, needed, fallback, *args):
    """``fn(*args)`` where ``needed`` (bool []), else ``fallback`` (a pytree like fn's output)."""
    fn = traced_once(fn, args)

    @jax.custom_batching.custom_vmap
    def selected(needed, fallback, args):
        return jax.lax.cond(needed, lambda: fn(*args), lambda: fallback)

    @selected.def_vmap
    def selected_batched(axis_size, in_batched, needed, fallback, args):
        need_b, fallback_b, args_b = in_batched
        needed = needed if need_b else jnp.broadcast_to(needed, (axis_size,))
        fallback = jax.tree_util.tree_map(
            lambda x, b: x if b else jnp.broadcast_to(x, (axis_size, *x.shape)),
            fallback,
            fallback_b,
        )
        out = _chunked(fn, needed, fallback, args, args_b, axis_size)
        return out, jax.tree_util.tree_map(lambda _: True, out)

    return selected(jnp.asarray(needed, bool), fallback, args)


def traced_once(fn, args):
    """``fn``, traced here once for one grid's ``args``, as a function that replays its jaxpr.

    Why: ``custom_vmap`` traces the unbatched branch and its batched rule traces ``fn`` again
    under ``vmap``, so a ``compute_where`` nested in another's ``fn`` (the outage tiers inside
    a cascade round) ran its Python once per enclosing trace, 11 times for one env step.
    Replaying a jaxpr skips ``fn``'s Python (``jnp``'s argument checks and promotions), which
    is most of the cost of tracing it; the program is the same.
    """
    closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
    out_tree = jax.tree_util.tree_structure(out_shape)

    def replay(*replay_args):
        leaves = jax.tree_util.tree_leaves(replay_args)
        outs = jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *leaves)
        return jax.tree_util.tree_unflatten(out_tree, outs)

    return replay


def _needing_first(needed):
    """[B] grid indices, those that need it first, each group in batch order.

    A stable partition by prefix sums and one scatter: ``argsort`` of a bool vector is a
    comparison sort on XLA:CPU and cost more than the chunks it ordered.
    """
    size = needed.shape[0]
    needing = jnp.cumsum(needed, dtype=jnp.int32)
    position = jnp.arange(size, dtype=jnp.int32)
    rank = jnp.where(needed, needing - 1, needing[-1] + position - needing)
    return jnp.zeros(size, jnp.int32).at[rank].set(position, unique_indices=True)


def _chunked(fn, needed, fallback, args, args_batched, size: int):
    if size == 1:  # a branch, without the partition, gathers and scatters
        rows = jax.tree_util.tree_map(lambda x, b: x[0] if b else x, args, args_batched)

        def computed():
            out = fn(*rows)
            return jax.tree_util.tree_map(lambda y, f: y[None].astype(f.dtype), out, fallback)

        return jax.lax.cond(needed[0], computed, lambda: fallback)
    chunk = max(-(-size // CHUNKS), min(size, MIN_CHUNK))
    order = _needing_first(needed)
    rounds = (jnp.sum(needed) + chunk - 1) // chunk
    axes = jax.tree_util.tree_map(lambda b: 0 if b else None, args_batched)
    batched_fn = jax.vmap(lambda a: fn(*a), in_axes=(axes,))

    def one_chunk(state):
        result, done = state
        # Clamped at the end of ``order``: a last partial chunk re-takes needing grids
        # already computed (same result) or grids that do not need it (dropped below).
        # Unsigned indices: jnp indexing then emits no negative-index fix-up per leaf.
        index = jax.lax.dynamic_slice(order, (done * chunk,), (chunk,)).astype(jnp.uint32)
        rows = jax.tree_util.tree_map(lambda x, b: x[index] if b else x, args, args_batched)
        computed = batched_fn(rows)
        # A row that does not need it is written out of bounds, and so dropped: one scatter
        # per output leaf, not a gather, a select and a scatter (program size, compile time).
        target = jnp.where(needed[index], index, jnp.uint32(size))

        def merge(ours, theirs):
            return ours.at[target].set(theirs.astype(ours.dtype), mode="drop")

        return jax.tree_util.tree_map(merge, result, computed), done + 1

    result, _ = jax.lax.while_loop(lambda s: s[1] < rounds, one_chunk, (fallback, jnp.int32(0)))
    return result


def lapack_batch_safe(fn, flops_per_call: int):
    """``fn`` (arrays of one grid -> arrays), whose ``vmap`` on CPU maps the batch in chunks of
    grids small enough that each LAPACK call in ``fn`` (at most ``flops_per_call`` for one grid)
    stays below ``LAPACK_INLINE_FLOPS``; on other platforms a plain ``vmap``.

    Why: above that size jaxlib (0.10) splits a batched factorisation over XLA's CPU thread pool
    and blocks the pool thread it runs on until the pieces finish. As many such calls at once as
    the pool has threads (the two independent Cholesky solves of one interior-point step, on 2
    cores) then wait for each other forever. In chunks, each call runs on its own thread.
    """
    chunk = max(1, (LAPACK_INLINE_FLOPS - 1) // max(1, flops_per_call))
    safe = jax.custom_batching.custom_vmap(fn)

    @safe.def_vmap
    def safe_batched(axis_size, in_batched, *args):
        args = jax.tree_util.tree_map(
            lambda x, batched: x if batched else jnp.broadcast_to(x, (axis_size, *x.shape)),
            args,
            tuple(in_batched),
        )

        def batched(*a):
            return jax.vmap(fn)(*a)

        def chunked(*a):
            return jax.lax.map(lambda xs: fn(*xs), a, batch_size=chunk)

        if chunk >= axis_size:
            out = batched(*args)
        else:
            out = jax.lax.platform_dependent(*args, cpu=chunked, default=batched)
        return out, jax.tree_util.tree_map(lambda _: True, out)

    return safe
