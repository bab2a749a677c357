"""Test-wide settings: no test may reach the network, and decoded data caches stay per-session."""

import os

os.environ.setdefault("AUTOSPACE_NO_DOWNLOAD", "1")
