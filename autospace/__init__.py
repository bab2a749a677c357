"""autospace: neural architecture search that designs its own search space."""

__version__ = "0.1.0"
