"""gridpod envs."""
