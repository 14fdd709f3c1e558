"""Numbers derived once from the config that the learner node needs (no JAX here)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class LearnerPlan:
    items_per_update: int  # queue items concatenated into one update (k per learner device)
    env_steps_per_update: int  # unroll_length x batch_size
    total_updates: int
    checkpoint_every: int  # updates between checkpoints (a final one is always written)
    take_timeout_s: float
