"""What livctl keeps: the dose log, raw-signal archives, calibration files, configuration."""
