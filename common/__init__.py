"""The bottom layer: what every other layer needs and nothing of theirs (errors, files, units)."""
