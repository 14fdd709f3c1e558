"""Per-step physics of the grid environment (exogenous processes, dispatch, balance)."""
