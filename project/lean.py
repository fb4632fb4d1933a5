"""A lean request path for public, read-only GET endpoints such as the lookup.

Those requests need none of the middleware: no session, CSRF token, messages, user or frame options. So the
WSGI application is a dispatcher: a request whose PATH_INFO is exactly the route of a view marked `lean = True`
(partners.endpoint: the lookup and the trip) goes to Django's WSGI handler with an empty middleware chain,
everything else to the normal one. The routes are read from the URLconf once, at start: nothing repeats them.
The lean handler still resolves URLs, sends request_started/request_finished (they manage database connections)
and turns exceptions into JSON 404/500 responses.

Of what the middleware adds, only `X-Content-Type-Options: nosniff` matters for a JSON response, and the
dispatcher adds it. Also skipped on lean paths, deliberately: the ALLOWED_HOSTS check (nothing there builds a
URL from the Host header), HSTS (every other response of the host sends it) and the HTTPS redirect (the load
balancer redirects plain HTTP before a request gets here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import django
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.urls import URLResolver, get_resolver

from project import errors

NOSNIFF = ("X-Content-Type-Options", "nosniff")


class LeanWSGIHandler(WSGIHandler):
    """Django's WSGI handler without middleware: URL resolution, the view, 404/500 handling and signals. An
    unexpected error is answered as JSON (project.errors.server_error), with DEBUG too: never a debug page."""

    def load_middleware(self, is_async=False):
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(json_on_error(self._get_response))


def json_on_error(get_response: Callable) -> Callable:
    def respond(request):
        try:
            return get_response(request)
        except errors.CLIENT_ERRORS:
            raise  # Django's own 4xx
        except Exception as exc:
            return errors.unexpected_error_response(request, exc)

    return respond


def _with_nosniff(start_response: Callable) -> Callable:
    def start(status: str, headers: list[tuple[str, str]], exc_info=None):
        if not any(name.lower() == "x-content-type-options" for name, _ in headers):
            headers = [*headers, NOSNIFF]
        return start_response(status, headers, exc_info)

    return start


class LeanDispatcher:
    """The WSGI application: exact `lean_paths` to the lean handler, everything else to the full one."""

    def __init__(self, *, lean_paths: Iterable[str], lean: Callable | None = None, full: Callable | None = None):
        self.lean_paths = frozenset(lean_paths)
        self.lean = lean or LeanWSGIHandler()
        self.full = full or WSGIHandler()

    def __call__(self, environ: dict, start_response: Callable):
        if environ.get("PATH_INFO") in self.lean_paths:
            return self.lean(environ, _with_nosniff(start_response))
        return self.full(environ, start_response)


def lean_paths(patterns=None, prefix: str = "/") -> list[str]:
    """The exact paths of the views marked `lean` in the URLconf (routes without parameters only)."""
    if patterns is None:
        patterns = get_resolver().url_patterns
    found = []
    for pattern in patterns:
        route = str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found += lean_paths(pattern.url_patterns, prefix + route)
        elif getattr(getattr(pattern.callback, "view_class", None), "lean", False) or getattr(
            pattern.callback, "lean", False
        ):
            if "<" in route or getattr(pattern.pattern, "_is_endpoint", True) is False:
                raise ValueError(f"a lean view needs a fixed route: {prefix}{route}")
            found.append(prefix + route)
    return found


def get_wsgi_application() -> LeanDispatcher:
    """As django.core.wsgi.get_wsgi_application, with the lean path for the views marked lean."""
    django.setup(set_prefix=False)
    return LeanDispatcher(lean_paths=lean_paths())
