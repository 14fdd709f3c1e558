"""What an actor hands to the trajectory queue: defined in ``replay.types``, the contract
actors and learner share; re-exported here for code that imports it from ``actors``."""

from replay.types import EpisodeTotals, TrajectoryItem

__all__ = ["EpisodeTotals", "TrajectoryItem"]
