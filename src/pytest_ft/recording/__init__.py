"""Recording and replaying model calls with vcrpy, and auditing the recordings."""

RECORD_MODES = ("once", "new_episodes", "none", "all")
