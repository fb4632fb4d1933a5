"""Writes to providers. What public lookups show of a provider (its approval, and for an approved one its name and
currency) changes only through staff: an owner's change to those waits in `pending_review` until staff accept it,
so no account can rewrite what travellers see, or make the index refresh all its areas, at will."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.concurrency import check_if_match
from core.errors import InvalidInput
from hexindex import api as index
from providers.models import Provider
from providers.serializers import EMAIL_TAKEN

# Shown in every public lookup result of the provider's areas.
REVIEWED_FIELDS = ("name", "currency")
NOTHING_TO_REVIEW = "This provider has no changes waiting for review."


def _save(provider: Provider, fields: list[str] | None = None) -> Provider:
    # The serializer checks email uniqueness; the database constraint settles a race between two requests.
    try:
        with transaction.atomic():
            provider.save(update_fields=fields)
    except IntegrityError as exc:
        if "provider_owner_email_unique_ci" in str(exc):
            raise InvalidInput({"email": [EMAIL_TAKEN]}) from exc
        raise
    return provider


def _area_ids(provider: Provider) -> list[int]:
    return list(provider.service_areas.values_list("id", flat=True))


def _locked(provider: Provider) -> Provider:
    """The current row, locked until commit. Lock order: the provider, then its areas (hexindex.invalidation)."""
    return Provider.objects.select_for_update().get(pk=provider.pk)


def provider_create(*, owner, data: dict) -> Provider:
    return _save(Provider(owner=owner, **data))


@transaction.atomic
def provider_update(*, provider: Provider, data: dict, if_match: str | None = None, by=None) -> Provider:
    """Write the fields sent. For an approved provider changed by anyone but staff, a new name or currency is held
    for review (`pending_review`) instead; sending the current value withdraws a proposal."""
    provider = _locked(provider)
    check_if_match(if_match, provider.etag, what="provider")
    data = dict(data)
    fields = [*data, "updated_at"]
    if provider.approved and not (by is not None and by.is_staff):
        proposals = {field: data.pop(field) for field in REVIEWED_FIELDS if field in data}
        if proposals:
            pending = dict(provider.pending_review)
            for field, value in proposals.items():
                if value == getattr(provider, field):
                    pending.pop(field, None)
                else:
                    pending[field] = value
            provider.pending_review = pending
            provider.review_requested_at = (provider.review_requested_at or timezone.now()) if pending else None
            fields = [*data, "pending_review", "review_requested_at", "updated_at"]
    return _apply(provider, data, fields)


def _apply(provider: Provider, data: dict, fields: list[str]) -> Provider:
    shown_before = (provider.name, provider.currency, provider.approved)
    for field, value in data.items():
        setattr(provider, field, value)
    _save(provider, fields=fields)
    if provider.approved and (provider.name, provider.currency) != shown_before[:2]:
        # Lookup results show the provider's name and currency: refresh its areas' cached results.
        index.areas_changed(_area_ids(provider))
    return provider


@transaction.atomic
def provider_review(*, provider: Provider, accept: bool) -> Provider:
    """Staff accept (the proposals become what lookups show) or reject the changes waiting for review."""
    provider = _locked(provider)
    if not provider.pending_review:
        raise InvalidInput({"pending_review": [NOTHING_TO_REVIEW]})
    accepted = dict(provider.pending_review) if accept else {}
    provider.pending_review, provider.review_requested_at = {}, None
    return _apply(provider, accepted, [*accepted, "pending_review", "review_requested_at", "updated_at"])


@transaction.atomic
def provider_delete(*, provider: Provider, if_match: str | None = None) -> None:
    locked = _locked(provider)  # first: area writes of this provider wait for the delete, never the other way round
    if if_match is not None:
        check_if_match(if_match, locked.etag, what="provider")
    # Service areas go with their provider (on_delete=CASCADE), and out of the index.
    index.areas_deleting(_area_ids(locked))
    locked.delete()


@transaction.atomic
def provider_set_approval(*, provider: Provider, approved: bool) -> Provider:
    """Approve a provider (its areas join public lookups, and changes waiting for review with them) or revoke its
    approval (they leave them at once: the index treats them as changed, so lookups check them in PostGIS, where
    they are no longer public, until the worker takes them out of the live index). A revocation commits even when
    the index's Redis is down or full: staff must always be able to take a provider out."""
    provider = _locked(provider)
    if provider.approved == approved:
        return provider
    area_ids = _area_ids(provider)
    before = index.current_boxes(area_ids, lock=False)  # where the public sees them (none when approving)
    provider.approved = approved
    provider.approved_at = timezone.now() if approved else None
    fields = ["approved", "approved_at", "updated_at"]
    if approved and provider.pending_review:
        for field, value in provider.pending_review.items():
            setattr(provider, field, value)
        fields += [*provider.pending_review, "pending_review", "review_requested_at"]
        provider.pending_review, provider.review_requested_at = {}, None
    _save(provider, fields=fields)
    index.areas_changed(area_ids, before=before, or_defer=not approved)
    return provider
