from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from accounts.security import client_address, login_blocked

TOO_MANY_FAILURES = "Too many failed sign-ins for this username or from your address: try again in {minutes} minutes."


class PortalAuthenticationForm(AuthenticationForm):
    """Django's sign-in form: it calls authenticate() with the request, so every failure counts towards the
    per-username and per-address limits (accounts.security). Once a limit is reached it says so, as the API's 429
    does, instead of blaming a password that may be right."""

    def clean(self):
        username = self.cleaned_data.get("username")
        if username and login_blocked(username, client_address(self.request)):
            minutes = max(1, settings.LOGIN_FAILURE_WINDOW // 60)
            raise ValidationError(TOO_MANY_FAILURES.format(minutes=minutes), code="blocked")
        return super().clean()
