"""gridpod learner."""
