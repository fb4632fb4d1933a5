"""ISO code lists, from pycountry's copy of the ISO tables rather than a hand-kept list."""

import pycountry

# ISO 639-1: only languages that have a two-letter code.
LANGUAGE_CHOICES = sorted((lang.alpha_2, lang.name) for lang in pycountry.languages if hasattr(lang, "alpha_2"))

# ISO 4217 codes that are not money a fare can be priced in: precious metals, bond-market units, the SDR,
# the testing code and "no currency".
NON_MONETARY_CURRENCIES = {"XAG", "XAU", "XPD", "XPT", "XBA", "XBB", "XBC", "XBD", "XDR", "XSU", "XTS", "XUA", "XXX"}
CURRENCY_CHOICES = sorted(
    (cur.alpha_3, cur.name) for cur in pycountry.currencies if cur.alpha_3 not in NON_MONETARY_CURRENCIES
)

LANGUAGE_CODES = frozenset(code for code, _ in LANGUAGE_CHOICES)
CURRENCY_CODES = frozenset(code for code, _ in CURRENCY_CHOICES)
