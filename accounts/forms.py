"""Sign-in forms (portal and admin) under the attempt limits of accounts.security: Django's forms call authenticate()
with the request, so LoginLimitBackend admits or delays every attempt; a delay or an unreachable Redis is said
plainly on the form instead of blaming a password that may be right."""

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from accounts.security import LOGIN_DELAYED_FORM, LOGIN_LIMITS_UNAVAILABLE, LoginDelayed, LoginLimitsUnavailable


def wait_text(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{-(-seconds // 60)} minutes"


class LimitedLoginMixin:
    def clean(self):
        try:
            return super().clean()
        except LoginDelayed as exc:
            raise ValidationError(LOGIN_DELAYED_FORM.format(wait=wait_text(exc.wait)), code="delayed") from None
        except LoginLimitsUnavailable:
            raise ValidationError(LOGIN_LIMITS_UNAVAILABLE, code="unavailable") from None


class LimitedAuthenticationForm(LimitedLoginMixin, AuthenticationForm):
    pass


class LimitedAdminAuthenticationForm(LimitedLoginMixin, AdminAuthenticationForm):
    pass
