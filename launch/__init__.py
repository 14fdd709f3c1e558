"""gridpod launch."""
