"""Intake: what a job must pass before it is queued (`validation`) and the one submit path (`submission`)."""
