"""The four endpoints of the download API."""

from django.urls import path

from . import views

urlpatterns = [
    path("downloads", views.batches),
    path("downloads/<str:batch_id>", views.batch),
    path("downloads/<str:batch_id>/retry", views.batch_retry),
]
