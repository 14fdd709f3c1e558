"""gridpod replay."""
