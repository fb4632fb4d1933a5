"""What a user may list of service areas, and how much geometry a page carries.

A user sees their own areas in full, other users' areas of approved providers without geometry, and nothing of
other users' unapproved providers; staff see everything. `geometry=full|simplified|none` chooses what a read
carries; a page of full geometry over LIST_MAX_POSITIONS_PER_PAGE positions is refused with a hint, so a page
of 50,000-vertex areas never takes gigabytes of memory.
"""

from django.conf import settings
from django.contrib.gis.db.models import MultiPolygonField
from django.core.paginator import Paginator
from django.db.models import Case, F, Func, Q, Value, When
from rest_framework.exceptions import ValidationError

from core.pagination import FeatureCollectionPagination

GEOMETRY_MODES = ("full", "simplified", "none")
BAD_MODE = "geometry is one of: full (default), simplified, none."
PAGE_TOO_HEAVY = (
    "This page would carry {positions:,} positions of geometry; a page carries at most {limit:,}. Ask for fewer "
    "areas (page_size), geometry=simplified or geometry=none."
)
# Simplified outlines keep detail down to a thousandth of the area's size: fine for an overview map.
SIMPLIFY_FRACTION = 0.001


class Simplified(Func):
    """The geometry simplified to a tolerance relative to its own extent; always a MultiPolygon."""

    template = (
        "ST_Multi(ST_SimplifyPreserveTopology(%(expressions)s, "
        f"{SIMPLIFY_FRACTION} * GREATEST(ST_XMax(%(expressions)s) - ST_XMin(%(expressions)s), "
        "ST_YMax(%(expressions)s) - ST_YMin(%(expressions)s))))"
    )
    output_field = MultiPolygonField(srid=4326)


def visible_areas(user, queryset):
    if user.is_staff:
        return queryset
    return queryset.filter(Q(provider__owner=user) | Q(provider__approved=True))


def parse_geometry_mode(query_params) -> str:
    mode = query_params.get("geometry", "full")
    if mode not in GEOMETRY_MODES:
        raise ValidationError({"geometry": [BAD_MODE]})
    return mode


def with_listed_geometry(queryset, *, user, mode: str):
    """Annotate `listed_geometry` (what the response shows) and `listed_positions` (what it weighs); the stored
    geometry itself is not loaded."""
    if mode == "none":
        shown, positions = Value(None, output_field=MultiPolygonField(srid=4326)), Value(0)
    else:
        shown = F("geometry") if mode == "full" else Simplified("geometry")
        positions = F("vertex_count") if mode == "full" else Value(0)
        if not user.is_staff:
            mine = Q(provider__owner=user)
            shown = Case(When(mine, then=shown), default=None, output_field=MultiPolygonField(srid=4326))
            positions = Case(When(mine, then=positions), default=Value(0))
    return queryset.defer("geometry").annotate(listed_geometry=shown, listed_positions=positions)


class _BudgetPaginator(Paginator):
    """Checks the weight of a page (one small query) before its rows, geometry included, are loaded."""

    def page(self, number):
        page = super().page(number)
        object_list = page.object_list
        if hasattr(object_list, "query") and "listed_positions" in object_list.query.annotations:
            positions = sum(object_list.values_list("listed_positions", flat=True))
            limit = settings.LIST_MAX_POSITIONS_PER_PAGE
            if positions > limit:
                raise ValidationError({"geometry": [PAGE_TOO_HEAVY.format(positions=positions, limit=limit)]})
        return page


class GeometryBudgetPagination(FeatureCollectionPagination):
    django_paginator_class = _BudgetPaginator
