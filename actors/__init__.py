"""gridpod actors."""
