"""The site's own pages, and the logout URL method its settings name."""

from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.utils.html import escape


def provider_logout(request):
    """OIDC_OP_LOGOUT_URL_METHOD: where the library's logout view sends the
    browser after the Django logout, here the provider's end_session
    endpoint (OpenID Connect RP-Initiated Logout 1.0 §2) with the stored ID
    token as hint and the site's home page, registered with the provider,
    to come back to."""
    query = urlencode({"id_token_hint": request.session["oidc_id_token"],
                       "post_logout_redirect_uri": request.build_absolute_uri("/")})
    return f"{settings.OIDC_OP_LOGOUT_ENDPOINT}?{query}"


def home(request):
    """A sign-in link, or the user and a sign-out button (the logout view takes POST)."""
    if not request.user.is_authenticated:
        return HttpResponse('<a href="/oidc/authenticate/">Sign in</a>')
    return HttpResponse(
        f"<p>Signed in as {escape(request.user.email)}</p>"
        f'<form method="post" action="/oidc/logout/">'
        f'<input type="hidden" name="csrfmiddlewaretoken" value="{get_token(request)}">'
        f'<button type="submit">Sign out</button></form>')


def whoami(request):
    """What the site knows of the user, for the test to check."""
    user = request.user
    if not user.is_authenticated:
        return JsonResponse({"authenticated": False})
    return JsonResponse({
        "authenticated": True, "username": user.username, "email": user.email,
        "users": get_user_model().objects.count(),
        "id_token": request.session.get("oidc_id_token"),
        "access_token": request.session.get("oidc_access_token"),
        "id_token_expiration": request.session.get("oidc_id_token_expiration"),
    })
