"""Recording and replaying model calls with vcrpy, and auditing the recordings."""
