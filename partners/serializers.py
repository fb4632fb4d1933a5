from rest_framework import serializers

from partners.models import KeyUsage, Partner, PartnerKey


class PartnerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Partner
        fields = ["id", "name", "contact_email", "notes", "created_at"]


class PartnerKeySerializer(serializers.ModelSerializer):
    partner = serializers.PrimaryKeyRelatedField(queryset=Partner.objects.all())
    name = serializers.CharField(max_length=50, help_text="What the key is for, e.g. `Booking engine (production)`.")
    expired = serializers.BooleanField(source="has_expired", read_only=True)

    class Meta:
        model = PartnerKey
        fields = ["prefix", "name", "partner", "rate_per_minute", "expiry_date", "expired", "revoked", "created"]
        read_only_fields = ["prefix", "revoked", "created"]

    def validate(self, attrs):
        if self.instance is not None and "partner" in attrs and attrs["partner"] != self.instance.partner:
            raise serializers.ValidationError({"partner": ["A key stays with its partner: create a new one."]})
        return attrs


class NewPartnerKeySerializer(PartnerKeySerializer):
    key = serializers.CharField(read_only=True, help_text="Shown once: only its SHA-512 digest is stored.")

    class Meta(PartnerKeySerializer.Meta):
        fields = [*PartnerKeySerializer.Meta.fields, "key"]


class KeyUsageSerializer(serializers.ModelSerializer):
    key = serializers.CharField(source="key.prefix", allow_null=True, help_text="The key's prefix; null: anonymous.")
    key_name = serializers.CharField(source="key.name", allow_null=True)
    partner = serializers.IntegerField(source="key.partner_id", allow_null=True)

    class Meta:
        model = KeyUsage
        fields = [
            "day",
            "key",
            "key_name",
            "partner",
            "lookups",
            "batches",
            "batch_points",
            "trips",
            "feed_reads",
            "throttled",
        ]
