"""The aria2_sync download API as a minimal Django project; see :mod:`.settings` to run it."""
