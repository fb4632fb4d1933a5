from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self):
        from accounts import security  # noqa: F401  (counts failed logins: a signal receiver)
