from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import permissions, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.concurrency import IF_MATCH, ETagMixin
from providers.filters import ProviderFilter
from providers.models import Provider
from providers.permissions import IsProviderManagerOrReadOnly, IsStaff, visible_providers
from providers.serializers import ProviderSerializer
from providers.services import (
    provider_create,
    provider_delete,
    provider_review,
    provider_set_approval,
    provider_update,
)


@extend_schema_view(
    list=extend_schema(
        summary="List providers",
        description="Your own providers in full, and other users' approved providers without their contact data "
        "(staff: everything). Paginated; filter by `name`, `language`, `currency`, `approved`.",
    ),
    create=extend_schema(
        summary="Create a provider",
        description="The authenticated user becomes its owner. A new provider is not approved: its areas are "
        "stored and indexed, and visible to you (`/lookup/?include_mine=true`), but public lookups show them only "
        "once staff approve the provider.",
    ),
    retrieve=extend_schema(summary="Get a provider"),
    update=extend_schema(summary="Replace a provider", description="Owner or staff only.", parameters=[IF_MATCH]),
    partial_update=extend_schema(
        summary="Update some fields of a provider",
        description="Owner or staff only. Only the fields sent are written. A new `name` or `currency` of an "
        "approved provider (what public lookups show) waits in `pending_review` until staff accept it.",
        parameters=[IF_MATCH],
    ),
    destroy=extend_schema(
        summary="Delete a provider and all of its service areas",
        description="Owner or staff only.",
        parameters=[IF_MATCH],
    ),
)
class ProviderViewSet(ETagMixin, viewsets.ModelViewSet):
    queryset = Provider.objects.all()
    serializer_class = ProviderSerializer
    filterset_class = ProviderFilter
    permission_classes = [permissions.IsAuthenticated, IsProviderManagerOrReadOnly]

    def get_queryset(self):
        return visible_providers(self.request.user, super().get_queryset())

    def perform_create(self, serializer):
        serializer.instance = self.etag_object = provider_create(
            owner=self.request.user, data=serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = self.etag_object = provider_update(
            provider=serializer.instance, data=serializer.validated_data, if_match=self.if_match, by=self.request.user
        )

    def perform_destroy(self, instance):
        provider_delete(provider=instance, if_match=self.if_match)

    @extend_schema(
        summary="Approve a provider (staff)",
        description="Its service areas join public lookups (within seconds, as the index makes them live; exact "
        "meanwhile).",
        request=None,
        responses={200: ProviderSerializer},
    )
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated, IsStaff])
    def approve(self, request, pk=None):
        return self._set_approval(approved=True)

    @extend_schema(
        summary="Revoke a provider's approval (staff)",
        description="Its service areas leave public lookups at once. The owner keeps them.",
        request=None,
        responses={200: ProviderSerializer},
    )
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated, IsStaff])
    def revoke(self, request, pk=None):
        return self._set_approval(approved=False)

    @extend_schema(
        summary="Accept the changes waiting for review (staff)",
        description="The provider's proposed name or currency (`pending_review`) become what public lookups show. "
        "400 when nothing waits.",
        request=None,
        responses={200: ProviderSerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="accept-changes",
        permission_classes=[permissions.IsAuthenticated, IsStaff],
    )
    def accept_changes(self, request, pk=None):
        return self._review(accept=True)

    @extend_schema(
        summary="Reject the changes waiting for review (staff)",
        description="The proposals in `pending_review` are dropped; public lookups keep showing what they showed.",
        request=None,
        responses={200: ProviderSerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="reject-changes",
        permission_classes=[permissions.IsAuthenticated, IsStaff],
    )
    def reject_changes(self, request, pk=None):
        return self._review(accept=False)

    def _review(self, *, accept: bool) -> Response:
        provider = self.etag_object = provider_review(provider=self.get_object(), accept=accept)
        return Response(self.get_serializer(provider).data)

    def _set_approval(self, *, approved: bool) -> Response:
        provider = self.etag_object = provider_set_approval(provider=self.get_object(), approved=approved)
        return Response(self.get_serializer(provider).data)
