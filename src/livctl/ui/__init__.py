"""User interface pieces the command line shows: the live view, the progress line."""
