"""Offline analysis: recordings, their time base, validation, reanalysis of a logged session."""
