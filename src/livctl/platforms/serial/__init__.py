"""The serial backend: the platform protocol's host side, the port, the platform."""
