"""livctl: drive low-intensity vibration (LIV) platforms and prove the dose they delivered.

Units are SI inside the package (m/s^2, Hz, s). Accelerations given to or shown by users are in g
(1 g = 9.80665 m/s^2) and every name says whether it is a peak or an RMS value.
"""

__version__ = "0.1.0"
