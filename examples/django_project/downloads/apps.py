"""App config: checks ``settings.ARIA2_SYNC`` at start-up, so a bad setting fails fast."""

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from examples import web_downloads


class DownloadsConfig(AppConfig):
    name = "examples.django_project.downloads"
    label = "downloads"

    def ready(self) -> None:
        # Only checked: the client itself is created by the first request, so nothing starts
        # at import or in management commands.
        try:
            web_downloads.Settings.from_mapping(getattr(settings, "ARIA2_SYNC", {}))
        except web_downloads.ConfigurationError as error:
            raise ImproperlyConfigured(f"settings.ARIA2_SYNC: {error}") from None
