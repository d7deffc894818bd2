"""Studies over days: regimens, schedules, compliance reports."""
