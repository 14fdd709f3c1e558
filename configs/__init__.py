"""gridpod configs."""
