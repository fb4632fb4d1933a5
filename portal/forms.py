from accounts.forms import LimitedAuthenticationForm


class PortalAuthenticationForm(LimitedAuthenticationForm):
    """Django's sign-in form under the same attempt limits as the API's token endpoint and the admin
    (accounts.security)."""
