from rest_framework import permissions


def can_manage_provider(user, provider) -> bool:
    """Only a provider's owner, or staff, may change it or its service areas."""
    return bool(user and user.is_authenticated and (user.is_staff or provider.owner_id == user.id))


class IsProviderManagerOrReadOnly(permissions.BasePermission):
    message = "Only the provider's owner or staff may change it."

    def has_object_permission(self, request, view, obj):
        if request.method in permissions.SAFE_METHODS:
            return True
        return can_manage_provider(request.user, obj)
