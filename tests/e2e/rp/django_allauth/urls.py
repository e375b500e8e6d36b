"""URLs: allauth's views under accounts/ (as its docs show) and two pages."""

import views
from django.urls import include, path

urlpatterns = [
    path("accounts/", include("allauth.urls")),
    path("whoami", views.whoami),
    path("", views.home),
]
