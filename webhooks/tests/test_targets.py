"""SSRF guards: https only, no private, loopback or link-local targets (by literal, in any spelling, or by what a
name resolves to), plain http to this machine only when local receivers are allowed."""

import re

import pytest

from webhooks.targets import (
    BAD_URL,
    HTTPS_REQUIRED,
    LOCAL_HTTP_ONLY,
    NO_CREDENTIALS,
    NOT_PUBLIC,
    UnsafeTarget,
    check_url,
    resolve,
)

REFUSED_ALWAYS = [
    ("https://10.0.0.5/hook", NOT_PUBLIC),
    ("https://172.16.3.4/hook", NOT_PUBLIC),
    ("https://192.168.1.1/hook", NOT_PUBLIC),
    ("https://169.254.169.254/latest/meta-data/", NOT_PUBLIC),  # cloud metadata
    ("https://100.64.0.1/hook", NOT_PUBLIC),  # carrier-grade NAT
    ("https://0.0.0.0/hook", NOT_PUBLIC),
    ("https://[fd00::1]/hook", NOT_PUBLIC),
    ("https://[fe80::1]/hook", NOT_PUBLIC),
    ("https://[::ffff:10.0.0.1]/hook", NOT_PUBLIC),
    ("https://224.0.0.1/hook", NOT_PUBLIC),
    ("https://0xa000001/hook", NOT_PUBLIC),  # 10.0.0.1 spelt as one hex number
    ("https://user:pw@hooks.example.com/", NO_CREDENTIALS),
    ("ftp://hooks.example.com/", BAD_URL),
    ("https:///nohost", BAD_URL),
    ("https://hooks.example.com:99999/", BAD_URL),
]
LOCAL = [
    "http://127.0.0.1:8080/hook",
    "http://localhost:9000/",
    "http://[::1]:8080/",
    "https://127.0.0.1/",
    "http://2130706433/",  # 127.0.0.1 as one decimal number
    "http://127.1/",
    "http://api.localhost/",
]


@pytest.mark.parametrize(("url", "message"), REFUSED_ALWAYS)
@pytest.mark.parametrize("allow_local", [False, True])
def test_private_addresses_and_malformed_urls_are_refused(url, message, allow_local):
    with pytest.raises(UnsafeTarget, match=re.escape(message)):
        check_url(url, allow_local=allow_local)


@pytest.mark.parametrize("url", LOCAL)
def test_this_machine_is_refused_unless_local_receivers_are_allowed(url):
    with pytest.raises(UnsafeTarget, match=NOT_PUBLIC):
        check_url(url, allow_local=False)
    check_url(url, allow_local=True)


def test_plain_http_is_refused_for_public_hosts():
    with pytest.raises(UnsafeTarget, match=HTTPS_REQUIRED):
        check_url("http://hooks.example.com/", allow_local=False)
    with pytest.raises(UnsafeTarget, match=re.escape(LOCAL_HTTP_ONLY)):
        check_url("http://hooks.example.com/", allow_local=True)


@pytest.mark.parametrize("url", ["https://hooks.example.com/x?y=1", "https://8.8.8.8/", "https://[2606:4700::1]:8443/"])
def test_public_https_urls_are_accepted(url):
    check_url(url, allow_local=False)


def test_a_name_resolving_to_this_machine_is_refused_when_sending():
    with pytest.raises(UnsafeTarget, match=re.escape("resolves to 127.0.0.1")):
        resolve("localhost", 443, allow_local=False)  # a name like any other here: what matters is its address
    assert resolve("127.0.0.1", 443, allow_local=True) == "127.0.0.1"
    with pytest.raises(UnsafeTarget, match=re.escape("resolves to 10.0.0.1")):
        resolve("10.0.0.1", 443, allow_local=True)
