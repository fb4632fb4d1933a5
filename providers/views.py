from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import permissions, viewsets

from providers.filters import ProviderFilter
from providers.models import Provider
from providers.permissions import IsProviderManagerOrReadOnly
from providers.serializers import ProviderSerializer
from providers.services import provider_create, provider_delete, provider_update


@extend_schema_view(
    list=extend_schema(summary="List providers", description="Paginated; filter by `name`, `language`, `currency`."),
    create=extend_schema(summary="Create a provider", description="The authenticated user becomes its owner."),
    retrieve=extend_schema(summary="Get a provider"),
    update=extend_schema(summary="Replace a provider", description="Owner or staff only."),
    partial_update=extend_schema(summary="Update some fields of a provider", description="Owner or staff only."),
    destroy=extend_schema(summary="Delete a provider and all of its service areas", description="Owner or staff only."),
)
class ProviderViewSet(viewsets.ModelViewSet):
    queryset = Provider.objects.all()
    serializer_class = ProviderSerializer
    filterset_class = ProviderFilter
    permission_classes = [permissions.IsAuthenticated, IsProviderManagerOrReadOnly]

    def perform_create(self, serializer):
        serializer.instance = provider_create(owner=self.request.user, data=serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = provider_update(provider=serializer.instance, data=serializer.validated_data)

    def perform_destroy(self, instance):
        provider_delete(provider=instance)
