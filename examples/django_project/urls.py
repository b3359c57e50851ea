"""The project's URLs: the download API at the root."""

from django.urls import include, path

urlpatterns = [path("", include("examples.django_project.downloads.urls"))]
