from django.contrib.auth.views import LogoutView
from django.urls import path, reverse_lazy

from areas.views import LookupView
from portal import views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.PortalLoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(next_page=reverse_lazy("portal:login")), name="logout"),
    # The API's lookup, mounted where the middleware runs: /api/v1/lookup/ is served without any (project/lean.py),
    # so it never sees a session, and `include_mine=true` there takes a token only. The page asks here for it.
    path("lookup/", LookupView.as_view(), name="lookup-mine"),
]
