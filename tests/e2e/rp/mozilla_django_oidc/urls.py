"""URLs: the library's views under oidc/ (as its docs show) and two pages."""

import views
from django.urls import include, path

urlpatterns = [
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("whoami", views.whoami),
    path("", views.home),
]
