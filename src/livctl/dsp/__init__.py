"""Signal processing: the estimator, block fits, synthesis, exposure weighting."""
