"""The provider portal: one page that works through the public API with the browser's session, and its sign-in.

The page holds no business logic: everything it changes goes through /api/v1/, with the same validation, limits
and ETags as any other client."""

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse, reverse_lazy

from portal.basemap import basemap_config
from portal.forms import PortalAuthenticationForm
from providers.codes import CURRENCY_CHOICES, LANGUAGE_CHOICES


class PortalLoginView(LoginView):
    template_name = "portal/login.html"
    authentication_form = PortalAuthenticationForm
    redirect_authenticated_user = True
    next_page = reverse_lazy("portal:home")


@login_required(login_url=reverse_lazy("portal:login"))
def home(request):
    return render(request, "portal/app.html", {"portal_config": page_config(request)})


def page_config(request) -> dict:
    return {
        "user": {"id": request.user.id, "username": request.user.get_username()},
        "csrfToken": get_token(request),
        "urls": {
            "providers": reverse("provider-list"),
            "areas": reverse("service-area-list"),
            "lookup": reverse("lookup"),
            "lookupMine": reverse("portal:lookup-mine"),
            "login": reverse("portal:login"),
        },
        "basemap": basemap_config(),
        "languages": LANGUAGE_CHOICES,
        "currencies": CURRENCY_CHOICES,
    }
