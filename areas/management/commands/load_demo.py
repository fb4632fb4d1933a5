"""A small demo data set: a few providers with service areas around real cities, in all four hemispheres,
with a hole, multi-part areas and one that crosses the antimeridian; and the three roles a newcomer needs to try
everything locally: the providers' owner (`demo`), a staff user (`demo-staff`) and a partner with an API key.
Safe to run again: it updates in place, and hands out new tokens and a new key (revoking the previous ones)."""

import math
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.services import token_create
from areas.models import ServiceArea
from areas.serializers import AreaGeometryField
from areas.services import area_create, area_update
from partners.models import Partner, PartnerKey
from partners.services import key_create, key_revoke
from providers.models import Provider

KM_PER_DEGREE = 111.32


def circle(lng: float, lat: float, radius_km: float, vertices: int = 24, clockwise: bool = False) -> list:
    """A ring approximating a circle on the ground, as [lng, lat] positions."""
    step = (-1 if clockwise else 1) * 2 * math.pi / vertices
    ring = [
        [
            round(lng + radius_km * math.cos(i * step) / (KM_PER_DEGREE * math.cos(math.radians(lat))), 6),
            round(lat + radius_km * math.sin(i * step) / KM_PER_DEGREE, 6),
        ]
        for i in range(vertices)
    ]
    return [*ring, ring[0]]


def zone(lng, lat, radius_km, hole_km=None) -> dict:
    rings = [circle(lng, lat, radius_km)]
    if hole_km:
        rings.append(circle(lng, lat, hole_km, clockwise=True))
    return {"type": "Polygon", "coordinates": rings}


def zones(*parts) -> dict:
    return {"type": "MultiPolygon", "coordinates": [zone(*part)["coordinates"] for part in parts]}


def box(west, south, east, north) -> list:
    return [[[west, south], [east, south], [east, north], [west, north], [west, south]]]


DEMO = [
    {
        "provider": {
            "name": "Acme Shuttles",
            "email": "dispatch@acme-shuttles.example",
            "phone_number": "+12125550123",
            "language": "en",
            "currency": "USD",
        },
        "areas": [
            ("JFK airport", "45.00", zone(-73.7781, 40.6413, 4)),
            ("LaGuardia airport", "38.00", zone(-73.8740, 40.7769, 3)),
            ("New York City", "60.00", zone(-73.9712, 40.7831, 25)),
            ("NYC airports", "52.00", zones((-73.7781, 40.6413, 5), (-73.8740, 40.7769, 4), (-74.1745, 40.6895, 5))),
        ],
    },
    {
        "provider": {
            "name": "Big Apple Cabs",
            "email": "hello@bigapplecabs.example",
            "phone_number": "+17185550199",
            "language": "es",
            "currency": "USD",
        },
        "areas": [
            ("JFK and Queens", "41.50", zone(-73.80, 40.68, 12)),
            # Midtown and downtown: with JFK and Queens, a JFK -> Times Square trip (the README's example).
            ("Manhattan", "38.00", zone(-73.9855, 40.7580, 6)),
        ],
    },
    {
        "provider": {
            "name": "Thames Transfers",
            "email": "bookings@thames-transfers.example",
            "phone_number": "+442079460958",
            "language": "en",
            "currency": "GBP",
        },
        "areas": [
            ("Heathrow", "55.00", zone(-0.4543, 51.4700, 5)),
            # Outside the congestion charge zone only: a hole in the middle.
            ("Greater London, outside the centre", "70.00", zone(-0.1276, 51.5072, 30, hole_km=3)),
        ],
    },
    {
        "provider": {
            "name": "Sakura Taxi",
            "email": "info@sakura-taxi.example",
            "phone_number": "+81312345678",
            "language": "ja",
            "currency": "JPY",
        },
        "areas": [
            ("Haneda", "6500.00", zone(139.7798, 35.5494, 4)),
            ("Narita", "21000.00", zone(140.3929, 35.7720, 5)),
        ],
    },
    {
        "provider": {
            "name": "Harbour City Shuttles",
            "email": "ride@harbourcity.example",
            "phone_number": "+61291234567",
            "language": "en",
            "currency": "AUD",
        },
        "areas": [("Sydney", "85.00", zone(151.2093, -33.8688, 20))],
    },
    {
        "provider": {
            "name": "Paulista Transfers",
            "email": "contato@paulista.example",
            "phone_number": "+551131234567",
            "language": "pt",
            "currency": "BRL",
        },
        "areas": [("São Paulo and Guarulhos", "150.00", zone(-46.6333, -23.5505, 30))],
    },
    {
        "provider": {
            "name": "Bula Island Transfers",
            "email": "bula@fiji-transfers.example",
            "phone_number": "+6796661234",
            "language": "en",
            "currency": "FJD",
        },
        # Taveuni straddles the 180th meridian: one area, two parts, one on each side.
        "areas": [
            (
                "Taveuni",
                "90.00",
                {
                    "type": "MultiPolygon",
                    "coordinates": [box(179.8, -17.1, 180.0, -16.6), box(-180.0, -17.1, -179.85, -16.6)],
                },
            )
        ],
    },
]


class Command(BaseCommand):
    help = "Load a small demo data set (providers and service areas around real cities). Idempotent."

    @transaction.atomic
    def handle(self, *args, **options):
        user, secret = self._user_with_token("demo", staff=False)
        geometry_field = AreaGeometryField()
        for entry in DEMO:
            fields = entry["provider"]
            provider, _ = Provider.objects.update_or_create(
                owner=user, email=fields["email"], defaults={**fields, "approved": True}
            )
            for name, price, geometry in entry["areas"]:
                data = {
                    "provider": provider,
                    "name": name,
                    "price": price,
                    "geometry": geometry_field.to_internal_value(geometry),
                }
                existing = ServiceArea.objects.filter(provider=provider, name=name).first()
                if existing is None:
                    area_create(data=data)
                elif existing.geometry != data["geometry"] or str(existing.price) != price:
                    area_update(area=existing, data=data)
        areas = ServiceArea.objects.filter(provider__owner=user).count()
        _, staff_secret = self._user_with_token("demo-staff", staff=True)
        partner_key = self._partner_key()
        self.stdout.write(f"Demo data: {len(DEMO)} providers, {areas} service areas, owned by user 'demo'.")
        self.stdout.write(f"Demo API token: {secret}")
        self.stdout.write(
            f"Demo staff token (user 'demo-staff': approves providers, makes partner keys): {staff_secret}"
        )
        self.stdout.write(f"Demo partner API key (partner 'Demo Partner'): {partner_key}")

    def _user_with_token(self, username: str, *, staff: bool):
        """The user (no password: tokens only; `manage.py changepassword` gives one for the portal or the admin)
        and a new token of theirs. Tokens are stored hashed, so it is new on every run (the previous one goes)."""
        user, _ = get_user_model().objects.get_or_create(
            username=username, defaults={"email": f"{username}@example.com", "is_staff": staff}
        )
        user.auth_token_set.filter(name="demo").delete()
        _, secret = token_create(user=user, name="demo", expires_in=timedelta(days=settings.API_TOKEN_TTL_DAYS))
        return user, secret

    def _partner_key(self) -> str:
        partner, _ = Partner.objects.get_or_create(
            name="Demo Partner", defaults={"contact_email": "it@partner.example"}
        )
        for old in PartnerKey.objects.filter(partner=partner, name="demo", revoked=False):
            key_revoke(key=old)
        _, key = key_create(partner=partner, name="demo")
        return key
