from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from accounts.views import ApiTokenViewSet, RegisterView, TokenView
from areas.api.crud import ServiceAreaViewSet
from areas.api.partner import BatchLookupView, ChangeFeedView, LookupView, TripLookupView
from partners.views import PartnerKeyViewSet, PartnerViewSet, UsageView
from project import docs
from project.api_root import api_root
from project.health import health, live
from project.metrics import metrics_view
from providers.views import ProviderViewSet
from webhooks.views import WebhookViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False  # project.api_root lists everything, the public endpoints too
router.register("providers", ProviderViewSet, basename="provider")
router.register("service-areas", ServiceAreaViewSet, basename="service-area")
router.register("auth/tokens", ApiTokenViewSet, basename="api-token")
router.register("partners", PartnerViewSet, basename="partner")
router.register("partner-keys", PartnerKeyViewSet, basename="partner-key")
router.register("webhooks", WebhookViewSet, basename="webhook")

api_v1 = [
    path("lookup/", LookupView.as_view(), name="lookup"),  # first: the hot path resolves with one pattern tried
    path("", api_root, name="api-root"),
    path("lookup/batch/", BatchLookupView.as_view(), name="lookup-batch"),
    path("lookup/trip/", TripLookupView.as_view(), name="lookup-trip"),
    path("changes/", ChangeFeedView.as_view(), name="changes"),
    path("usage/", UsageView.as_view(), name="usage"),
    path("", include(router.urls)),
    path("auth/register/", RegisterView.as_view(), name="auth-register"),
    path("auth/token/", TokenView.as_view(), name="auth-token"),
]

handler400 = "project.errors.bad_request"
handler404 = "project.errors.not_found"
handler500 = "project.errors.server_error"

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", docs.swagger_ui, name="swagger-ui"),
    path("api/redoc/", docs.redoc, name="redoc"),
    path("health/", health, name="health"),
    path("health/live/", live, name="health-live"),
    path("metrics", metrics_view, name="metrics"),
    path("portal/", include("portal.urls")),
]
if settings.ADMIN_ENABLED:
    urlpatterns.append(path("admin/", admin.site.urls))
