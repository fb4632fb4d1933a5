"""Writes: partners' keys. Every saved change to a key is announced to the web processes once committed
(partners.signals), so none goes on trusting what it remembered about the key."""

from django.db import transaction

from partners.models import Partner, PartnerKey


@transaction.atomic
def key_create(*, partner: Partner, name: str, rate_per_minute: int | None = None, expiry_date=None):
    """(the key's record, the key itself: shown once, only its digest is stored)."""
    fields = {"partner": partner, "name": name, "expiry_date": expiry_date}
    if rate_per_minute is not None:
        fields["rate_per_minute"] = rate_per_minute
    record, key = PartnerKey.objects.create_key(**fields)
    return record, key


@transaction.atomic
def key_update(*, key: PartnerKey, data: dict) -> PartnerKey:
    key = PartnerKey.objects.select_for_update().get(pk=key.pk)
    for field in ("name", "rate_per_minute", "expiry_date"):
        if field in data:
            setattr(key, field, data[field])
    key.save(update_fields=[field for field in ("name", "rate_per_minute", "expiry_date") if field in data])
    return key


@transaction.atomic
def key_revoke(*, key: PartnerKey) -> PartnerKey:
    """Refused from the next request on; kept for its usage history (revoking cannot be undone)."""
    key = PartnerKey.objects.select_for_update().get(pk=key.pk)
    if not key.revoked:
        key.revoked = True
        key.save(update_fields=["revoked"])
    return key
