"""Build, check and publish the ufkto dataset folder."""

__version__ = "1.2.0"
