"""Where the Django admin answers: switched off entirely (ADMIN_ENABLED=false: no URL at all), or only from some
networks (ADMIN_ALLOWED_NETWORKS, CIDRs; empty = any). Anywhere else it is a plain 404, as if it did not exist."""

from django.conf import settings
from django.http import HttpResponseNotFound

from core.networks import address_in, client_address, parse_networks


class AdminAccessMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.networks = parse_networks(settings.ADMIN_ALLOWED_NETWORKS)

    def __call__(self, request):
        if self.networks and request.path_info.startswith("/admin/") and not self._allowed(request):
            return HttpResponseNotFound(b"Not Found", content_type="text/plain")
        return self.get_response(request)

    def _allowed(self, request) -> bool:
        return address_in(client_address(request), self.networks)
