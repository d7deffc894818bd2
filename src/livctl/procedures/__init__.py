"""Procedures that move a platform: preparation, the motion guard, sessions, calibrations, tones."""
