"""The partner endpoints' request pipeline, written once: lookup, batch, trip and the change feed each declare only
their own steps (parse, how many points, the work) and this runs them in order:

    preflight / method -> parse (400) -> the owner, for include_mine (401) -> the key and the limit (401, 429)
      -> the work (its Redis read may carry the limit's counters) -> settle the limit, count the usage (429)
      -> the answer with its ETag, or 304 (Django's conditional-response helper) -> CORS
    and any domain error on the way (a dependency down: 503 naming it) as JSON, in core.http.

An endpoint is a DRF APIView only so that drf-spectacular documents it; requests never go through DRF (no content
negotiation, authentication, throttling or request wrapping), and those marked `lean` are served without any
middleware (project.lean).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils.cache import get_conditional_response
from rest_framework import permissions
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from core import metrics
from core.errors import NotAuthenticated, as_application_error
from core.http import error_response
from hexindex.api import Piggyback
from partners import limits, usage

INCLUDE_MINE_NEEDS_TOKEN = "include_mine=true shows your own areas too: send your API token (Authorization: Token ...)."


@dataclass(frozen=True, slots=True)
class Answer:
    """What an endpoint's work produced: a JSON body. `conditional`: sent with an ETag (which changes whenever the
    body does) and `Cache-Control: no-cache`, answered 304 to an If-None-Match naming it. `private`: for one user."""

    body: bytes
    conditional: bool = True
    private: bool = False


@dataclass(slots=True)
class Call:
    """One request on its way through the pipeline."""

    request: Any
    params: Any = None
    owner: Any = None  # the signed-in user of an include_mine lookup
    also: Piggyback | None = None  # limit counters the work may send with its own Redis read
    started: float = field(default_factory=time.perf_counter)


class PartnerEndpoint(APIView):
    kind: ClassVar[str]  # usage counter: lookup, batch, trip, feed
    allowed: ClassVar[tuple[str, ...]] = ("GET", "HEAD")
    lean: ClassVar[bool] = False  # served without middleware (project.lean)
    counts_as_lookup: ClassVar[bool] = True  # a failure is a failed lookup in the metrics

    authentication_classes: ClassVar[list] = []
    permission_classes: ClassVar[list] = [permissions.AllowAny]
    throttle_classes: ClassVar[list] = []

    # --- what each endpoint declares ---------------------------------------------------------------------

    def parse(self, request) -> Any:
        """The endpoint's parameters, or InvalidInput (400) naming each bad one."""
        raise NotImplementedError

    def points(self, params) -> int:
        return 1

    def wants_owner(self, params) -> bool:
        return False

    def work(self, call: Call) -> Answer:
        raise NotImplementedError

    # --- the pipeline --------------------------------------------------------------------------------------

    def dispatch(self, request, *args, **kwargs):
        return serve(self, request)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Handlers for the methods served (dispatch answers them all): DRF and drf-spectacular list a view's
        # operations by the handlers it has.
        for method in cls.allowed:
            setattr(cls, method.lower(), _served)


def _served(self, request, *args, **kwargs):
    return serve(self, request)


def serve(endpoint: PartnerEndpoint, request) -> HttpResponse:
    if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
        return _preflight(request, endpoint.allowed)
    if request.method not in endpoint.allowed:
        allowed = ", ".join((*endpoint.allowed, "OPTIONS"))
        response = JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
        response["Allow"] = allowed
        return _cors(request, response)
    call = Call(request)
    try:
        call.params = endpoint.parse(request)
        if endpoint.wants_owner(call.params):
            call.owner = _owner(request)
        gate = limits.check(
            request,
            kind=endpoint.kind,
            points=endpoint.points(call.params),
            owner_id=call.owner.id if call.owner is not None else None,
        )
        call.also = gate.also
        answer = endpoint.work(call)
        admission = limits.settle(gate)
        response = _respond(request, answer, admission)
    except Exception as exc:
        error = as_application_error(exc)
        if error is None:
            if endpoint.counts_as_lookup:
                metrics.lookup_failed(time.perf_counter() - call.started)
            raise  # a bug: a JSON 500 (project.lean, project.errors)
        if error.status == 503 and endpoint.counts_as_lookup:
            metrics.lookup_failed(time.perf_counter() - call.started)
        response = error_response(error)
    usage.flush_if_due()
    return _cors(request, response)


def _owner(request):
    """The user whose token (or portal session) an include_mine request carries; NotAuthenticated (401) otherwise."""
    try:
        authenticators = [authenticator() for authenticator in api_settings.DEFAULT_AUTHENTICATION_CLASSES]
        user = Request(request, authenticators=authenticators).user
    except AuthenticationFailed as exc:
        raise NotAuthenticated(str(exc.detail), headers={"WWW-Authenticate": "Token"}) from exc
    if not user.is_authenticated:
        raise NotAuthenticated(INCLUDE_MINE_NEEDS_TOKEN, headers={"WWW-Authenticate": "Token"})
    return user


def _respond(request, answer: Answer, admission: limits.Admission) -> HttpResponse:
    response = HttpResponse(answer.body, content_type="application/json")
    if answer.conditional:
        etag = f'"{hashlib.blake2b(answer.body, digest_size=12).hexdigest()}"'
        cache_control = "private, no-cache" if answer.private else "no-cache"
        not_modified = get_conditional_response(request, etag=etag)
        if not_modified is not None:
            response = not_modified
        response["ETag"] = etag
        response["Cache-Control"] = cache_control
    for name, value in admission.headers().items():
        response[name] = value
    return response


def _cors(request, response: HttpResponse) -> HttpResponse:
    """CORS on every partner endpoint (the lean ones skip the middleware stack, where django-cors-headers runs)."""
    origin = request.headers.get("Origin")
    if origin and (settings.CORS_ALLOW_ALL_ORIGINS or origin in settings.CORS_ALLOWED_ORIGINS):
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Expose-Headers"] = ", ".join(settings.CORS_EXPOSE_HEADERS)
        response["Vary"] = "Origin"
    return response


def _preflight(request, allowed: tuple[str, ...]) -> HttpResponse:
    """A browser asking whether a cross-origin request (with an Authorization, X-API-Key or If-None-Match header)
    may be sent."""
    response = _cors(request, HttpResponse(status=204))
    if "Access-Control-Allow-Origin" in response:
        response["Access-Control-Allow-Methods"] = ", ".join((*allowed, "OPTIONS"))
        response["Access-Control-Allow-Headers"] = ", ".join(settings.CORS_ALLOW_HEADERS)
        response["Access-Control-Max-Age"] = "86400"
    return response
