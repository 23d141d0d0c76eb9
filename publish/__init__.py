"""Build, check and publish the ufkto dataset folder."""
