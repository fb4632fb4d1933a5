from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from partners import keys
from partners.models import PartnerKey


@receiver(post_save, sender=PartnerKey)
@receiver(post_delete, sender=PartnerKey)
def _announce_key_change(**kwargs):
    # Whoever changed the key (API, admin, shell): every web process forgets what it verified, once committed.
    transaction.on_commit(keys.keys_changed)
