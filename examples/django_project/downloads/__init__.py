"""The ``downloads`` app: Django views over :mod:`examples.web_downloads` (no models)."""
