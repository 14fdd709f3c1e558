"""Line protection and cascading trips.

Rules (per branch, per step):

* a branch whose loading ``|flow| / rating`` exceeds ``instant_trip_ratio`` (150% by default)
  trips at once;
* a branch above 100% for ``overload_steps_to_trip`` consecutive steps trips on the step that
  completes the count (the counter advances once per step, after the cascade);
* after trips the flows are recomputed with the branch mask and the same rules are applied
  again, up to ``cascade_rounds`` rounds within the step (``lax.while_loop``, stopping early
  when a round trips nothing), so an overload can propagate as a real cascade. Under ``vmap``
  a round re-solves only the grids whose cascade goes on (``envs.batching``). Trips found
  after the last round stay pending and fire at the start of the next step's protection;
* a tripped branch recloses after ``reconnect_steps`` steps (its cooldown runs out).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from envs.batching import compute_where


def dispatch_topology(branch_in_service, branch_cooldown):
    """The branches in service when the coming step's dispatch meets the flows: today's, plus
    the tripped branches whose cooldown ends this step (they reclose at its start). Scheduled
    outages are not known ahead, so a dispatch cannot plan for them. Either JAX or NumPy: every
    OPF that dispatches a step, in JAX or on the host with HiGHS, reads its topology here."""
    return branch_in_service | (branch_cooldown == 1)


def loading_ratio(flow_mw: jax.Array, rating_mva: jax.Array) -> jax.Array:
    """|flow| / rating per branch."""
    return jnp.abs(flow_mw) / rating_mva


def protection_trips(
    loading: jax.Array,
    in_service: jax.Array,
    overload_count: jax.Array,
    steps_to_trip: int,
    instant_ratio: float,
) -> jax.Array:
    """Branches that trip now [L] bool."""
    instant = loading > instant_ratio
    timed = (loading > 1.0) & (overload_count + 1 >= steps_to_trip)
    return in_service & (instant | timed)


def next_overload_count(
    loading: jax.Array, in_service: jax.Array, overload_count: jax.Array
) -> jax.Array:
    """Consecutive-overload counter after this step (reset when back under the rating)."""
    over = in_service & (loading > 1.0)
    return jnp.where(over, overload_count + 1, 0)


def run_cascade(
    solve: Callable,
    in_service: jax.Array,
    energised: jax.Array,
    overload_count: jax.Array,
    rating: jax.Array,
    steps_to_trip: int,
    instant_ratio: float,
    rounds: int,
    context=(),
):
    """Solve, trip, re-solve until nothing trips or ``rounds`` re-solves are spent.

    ``solve(in_service [L] bool, energised [N] bool, active [] bool, *context) -> DCFlow``
    computes flows for a topology, with device injections masked by the energised buses of
    the previous solve. Re-solves run only for grids whose cascade goes on (``active`` is
    then True); a grid whose cascade stopped keeps its last flow. Under ``vmap`` every
    batched value ``solve`` uses must come through ``context`` (see ``compute_where``).
    Returns ``(in_service [L], flow: DCFlow, energised_used [N])`` where ``energised_used``
    is the mask the final solve's injections were built with.
    """

    def trips_of(flow, status):
        load = loading_ratio(flow.flow_mw, rating)
        return protection_trips(load, status, overload_count, steps_to_trip, instant_ratio)

    flow = solve(in_service, energised, jnp.bool_(True), *context)
    carry = (jnp.int32(0), in_service, flow, energised, trips_of(flow, in_service))

    def going_on(round_index, pending):
        return (round_index < rounds) & jnp.any(pending)

    def cond(c):
        round_index, _, _, _, pending = c
        return going_on(round_index, pending)

    def body(c):
        round_index, status, flow, _, pending = c
        status = status & ~pending
        used = flow.bus_energised
        # Under vmap the body runs for the whole batch while any grid goes on; only the
        # grids still going on are re-solved.
        new_flow = compute_where(
            lambda s, u, c: solve(s, u, jnp.bool_(True), *c),
            going_on(round_index, pending),
            flow,
            status,
            used,
            context,
        )
        return round_index + 1, status, new_flow, used, trips_of(new_flow, status)

    _, status, flow, used, _ = jax.lax.while_loop(cond, body, carry)
    return status, flow, used
