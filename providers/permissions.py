from django.db.models import Q
from rest_framework import permissions


def can_manage_provider(user, provider) -> bool:
    """Only a provider's owner, or staff, may change it or its service areas."""
    return bool(user and user.is_authenticated and (user.is_staff or provider.owner_id == user.id))


def can_see_private(user, provider) -> bool:
    """Contact data and geometries are for a provider's owner and staff only."""
    return can_manage_provider(user, provider)


def visible_providers(user, queryset):
    """What a user may list: their own providers, and the approved ones of others (staff: everything)."""
    if user.is_staff:
        return queryset
    return queryset.filter(Q(owner=user) | Q(approved=True))


class IsStaff(permissions.BasePermission):
    message = "Only staff may do this."

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_staff)


class IsProviderManagerOrReadOnly(permissions.BasePermission):
    message = "Only the provider's owner or staff may change it."

    def has_object_permission(self, request, view, obj):
        if request.method in permissions.SAFE_METHODS:
            return True
        return can_manage_provider(request.user, obj)
