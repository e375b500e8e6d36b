"""The site's own pages."""

from allauth.socialaccount.models import SocialAccount, SocialToken
from django.contrib.auth import get_user_model
from django.http import HttpResponse, JsonResponse


def home(request):
    """A sign-in link, or the user and allauth's sign-out page's link."""
    if not request.user.is_authenticated:
        return HttpResponse('<a href="/accounts/oidc/provincial/login/">Sign in</a>')
    return HttpResponse('Signed in. <a href="/accounts/logout/">Sign out</a>')


def whoami(request):
    """What the site knows of the user, for the test to check."""
    user = request.user
    if not user.is_authenticated:
        return JsonResponse({"authenticated": False})
    account = SocialAccount.objects.get(user=user)
    token = SocialToken.objects.get(account=account)
    return JsonResponse({
        "authenticated": True, "username": user.username, "email": user.email,
        "name": f"{user.first_name} {user.last_name}".strip(),
        "users": get_user_model().objects.count(),
        "provider": account.provider, "uid": account.uid, "extra_data": account.extra_data,
        "access_token": token.token, "refresh_token": token.token_secret,
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
    })
