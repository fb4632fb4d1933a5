from django.contrib import admin

from accounts.forms import LimitedAdminAuthenticationForm

# The admin's sign-in says when an attempt must wait, or cannot be checked, as the portal's does.
admin.site.login_form = LimitedAdminAuthenticationForm
