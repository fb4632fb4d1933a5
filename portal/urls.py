from django.contrib.auth.views import LogoutView
from django.urls import path, reverse_lazy

from areas.api.partner import LookupView
from portal import views


class SessionLookupView(LookupView):
    """The API's lookup, mounted where the middleware runs: /api/v1/lookup/ is served without any (project/lean.py),
    so it never sees a session, and `include_mine=true` there takes a token only. The page asks here for it."""

    lean = False


app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.PortalLoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(next_page=reverse_lazy("portal:login")), name="logout"),
    path("lookup/", SessionLookupView.as_view(), name="lookup-mine"),
]
