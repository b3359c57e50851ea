"""The package version, alone in its module so that setup.cfg can read it without importing."""

__version__ = "0.1.0.dev0"
