"""README.md's request examples answer what the README says they answer.

Every `curl` example of the README is sent, in README order, to a fresh database holding the demo data
(`load_demo`, as `make run` loads it) with the index built, the way a newcomer runs them one after the other:
each example sees what the ones before it did. Its documented answer (status, the headers it names, JSON with
elisions: project/tests/readme_examples.py says how it is read) must match the real one. The README's
placeholders are filled in the way the README tells a newcomer to get them. The reader and matcher are tested
below it, on hand-written answers.
"""

import io
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from hexindex import caches
from project.tests.readme_examples import (
    Arr,
    Documented,
    Glob,
    Obj,
    documented,
    examples,
    mismatches,
    parse_pattern,
    request_of,
)
from webhooks.receiver import WebhookReceiver
from webhooks.tasks import dispatch as webhooks_dispatch

README = Path(settings.BASE_DIR) / "README.md"

# How many examples with a documented answer the README has (39 when this was written): a reader that stopped
# finding them would otherwise pass by checking nothing.
AT_LEAST_CHECKED = 39
# Examples marked `(not checked: ...)`, where running them could not show the answer: none since the webhooks'
# examples run against the receiver the README has a reader start (webhooks/receiver.py).
AT_MOST_NOT_CHECKED = 0


@dataclass(frozen=True)
class FromAnswer:
    """A shell variable the README sets from a field of an earlier answer (`TOKEN=...  # the whole "token" value`)."""

    request: str  # "POST /api/v1/auth/token/": the first example sending it answers it
    field: str


@dataclass(frozen=True)
class FromDemo:
    """A shell variable the README sets from a line `make run` prints (the output of `load_demo`)."""

    label: str  # the printed line starts with it; the value follows its last ": "


# The README's shell variables, and where it tells a newcomer to get them.
VARIABLES = {
    "$STAFF_TOKEN": FromDemo("Demo staff token"),
    "$TOKEN": FromAnswer("POST /api/v1/auth/token/", "token"),
    "$PARTNER_KEY": FromAnswer("POST /api/v1/partner-keys/", "key"),
    "$WEBHOOK_SECRET": FromAnswer("POST /api/v1/webhooks/", "secret"),
    "$DELIVERY": FromAnswer("POST /api/v1/webhooks/1/test/", "delivery_id"),
}
# The port the README runs its webhook receiver on; the test's receiver listens on a free one instead.
README_RECEIVER = "127.0.0.1:8765"

# Values that differ on every run, which the README writes as made-up examples: each stands for the real value at
# the place of the first documented answer that shows it (as a whole string, or as the start of an elided one),
# as a reader copies it from there into later commands; later answers must then show that real value.
PLACEHOLDERS = [
    "1f6c0e5a9b2d7c4",  # the registration's token: its first 15 characters, which are its id
    "8c1d04b2a7e95f3",  # the id of the token from POST /api/v1/auth/token/
    "Xk3v9QaL",  # the new partner key's prefix
    '"3f9c0e5d7a1b2c4e6f8a0b1c"',  # a lookup's ETag
    "7340-2209",  # change feed cursors
    "7341-2210",
    "mD3bq0Zf1c9e",  # a webhook's secret (its start)
    "5f0c6c1e-8f7e-",  # a webhook delivery's id (its start)
]


def demo_values(output: str) -> dict[str, str]:
    values = {}
    for name, source in VARIABLES.items():
        if isinstance(source, FromDemo):
            lines = [line for line in output.splitlines() if line.strip().startswith(source.label)]
            assert len(lines) == 1, f"load_demo printed no line {source.label!r} (for {name}):\n{output}"
            values[name] = lines[0].rsplit(": ", 1)[1].strip()
    return values


def substitute(text: str, values: dict[str, str]) -> str:
    for placeholder in sorted(values, key=len, reverse=True):  # a longer one first, should one contain another
        text = text.replace(placeholder, values[placeholder])
    return text


def send(client: Client, command: str):
    if unset := re.findall(r"\$[A-Z_]+", command):
        raise AssertionError(f"the README uses {unset} before saying where to get it")
    request = request_of(command)
    headers = dict(request.headers)
    content_type = headers.pop("Content-Type", "application/x-www-form-urlencoded")  # curl's, with -d
    response = client.generic(
        request.method, request.path, data=request.body or "", content_type=content_type, headers=headers
    )
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        body = response.content.decode(errors="replace")
    return request, response, body


def bind_variables(values: dict[str, str], request, body: object) -> None:
    sent = f"{request.method} {request.path.split('?')[0]}"
    for name, source in VARIABLES.items():
        if isinstance(source, FromAnswer) and name not in values and source.request == sent:
            assert isinstance(body, dict) and source.field in body, f"{sent} answered no {source.field!r}: {body}"
            values[name] = body[source.field]


def bind_placeholders(values: dict[str, str], doc: Documented, response, body: object) -> None:
    """Binds the placeholders (PLACEHOLDERS) this documented answer shows first to the real values there."""
    unbound = [placeholder for placeholder in PLACEHOLDERS if placeholder not in values]

    def take(pattern: object, actual: object) -> None:
        if isinstance(pattern, Obj) and isinstance(actual, dict):
            for name, value in pattern.members.items():
                take(value, actual.get(name))
        elif isinstance(pattern, Arr) and isinstance(actual, list):
            for value, item in zip(pattern.items, actual, strict=False):
                take(value, item)
        elif isinstance(pattern, str) and pattern in unbound and isinstance(actual, str):
            values.setdefault(pattern, actual)
        elif isinstance(pattern, Glob) and isinstance(actual, str):  # "8c1d04b2a7e95f3…": the value's start
            for placeholder in unbound:
                if pattern.parts[0].startswith(placeholder):
                    values.setdefault(placeholder, actual[: len(placeholder)])

    take(doc.body, body)
    for name, value in doc.headers.items():
        take(parse_pattern(json.dumps(value))[0], response.get(name, ""))


def problems(doc: Documented, response, body: object) -> list[str]:
    found = []
    if response.status_code != (doc.status or 200):
        found.append(f"status: documented {doc.status or 200}, answered {response.status_code}")
    for name, value in doc.headers.items():
        if not response.has_header(name):
            found.append(f"header {name}: documented, but not in the answer")
        else:
            found += mismatches(parse_pattern(json.dumps(value))[0], response[name], f"header {name}")
    if doc.body is not None:
        found += mismatches(doc.body, body)
    return found


@pytest.fixture
def lookups_forget_earlier_areas():
    """Ids start at 1 again in this test (as on a fresh `make run`), so the results and outlines this process
    remembers of other tests' areas (by id and version) would be taken for the demo's; a real process never sees
    an id twice. Forgotten before, and this test's after, for the tests that follow."""
    for cache in (caches.results, caches.shapes):
        cache.use_generation(-1)
    yield
    for cache in (caches.results, caches.shapes):
        cache.use_generation(-1)


@pytest.mark.django_db(transaction=True, reset_sequences=True)  # ids as on a fresh `make run`; the feed needs commits
def test_readme_examples_answer_what_the_readme_says(index_all, settings, lookups_forget_earlier_areas, receiver):
    settings.LOOKUP_ANONYMOUS_RATE_PER_MINUTE = 30  # as under `make run` (project/settings/base.py), not off
    demo = io.StringIO()
    call_command("load_demo", stdout=demo)
    index_all()
    values, client = demo_values(demo.getvalue()), Client()
    values[README_RECEIVER] = f"127.0.0.1:{receiver.server_port}"
    checked, not_checked, failures = 0, [], []
    for example in examples(README.read_text()):
        if not example.checked:
            not_checked.append(example.line)
            continue
        request, response, body = send(client, substitute(example.command, values))
        bind_variables(values, request, body)
        receiver.secret = values.get("$WEBHOOK_SECRET", "")  # the README starts it with the secret once it has it
        webhooks_dispatch()  # what the worker does every WEBHOOKS_POLL_SECONDS, between a reader's commands
        where = f"README.md:{example.line} ({request.method} {request.path})"
        answered = f"(answered {response.status_code} {json.dumps(body, ensure_ascii=False)[:800]})"
        if not example.answer:  # a step whose answer the README does not show: it must at least succeed
            if response.status_code >= 300:
                failures.append(f"{where}: {answered}")
            continue
        try:
            bind_placeholders(values, documented(substitute(example.answer, values)), response, body)
            found = problems(documented(substitute(example.answer, values)), response, body)
        except ValueError as exc:  # an answer written in no form that can be checked
            found = [f"cannot read the documented answer: {exc}"]
        if found:
            failures.append("\n    ".join([f"{where}:", *found, answered]))
        checked += 1
    assert not failures, "\n".join(failures)
    expected = receiver_printed_per_readme()  # what it printed by the end of the webhooks' examples
    printed = without_run_values(receiver.lines)[: len(expected)]
    assert printed == expected, "the webhook receiver printed otherwise than the README says"
    assert checked >= AT_LEAST_CHECKED, f"only {checked} README examples with an answer were found and checked"
    assert len(not_checked) <= AT_MOST_NOT_CHECKED, f"README examples marked not checked, lines {not_checked}"
    assert not (unused := set(VARIABLES) - set(values)), f"the README no longer sets {unused}: drop them here"
    assert not (unused := set(PLACEHOLDERS) - set(values)), f"the README no longer shows {unused}: drop them here"


@pytest.fixture
def receiver():
    """The README's webhook receiver (webhooks/receiver.py), on a free port."""
    server = WebhookReceiver(("127.0.0.1", 0), out=io.StringIO())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def without_run_values(lines: list[str]) -> list[str]:
    """Printed lines without their time of day, delivery ids and cursors, which differ on every run."""
    return [
        re.sub(r"cursor \d+-\d+", "cursor …", re.sub(r"delivery [0-9a-f]{8}", "delivery …", line.split("  ", 1)[1]))
        for line in lines
    ]


def receiver_printed_per_readme() -> list[str]:
    """The README's sample of what the receiver prints (a line indented by 4 spaces continues the one before)."""
    sample = README.read_text().split("Meanwhile the receiver printed", 1)[1].split("```", 2)[1]
    printed: list[str] = []
    for line in sample.strip().splitlines():
        if line.startswith("    "):
            printed[-1] += "\n" + line
        else:
            printed.append(line)
    return without_run_values(printed)


# --- the reader and the matcher, on hand-written answers -----------------------------------------------------------


def match(documented_json: str, actual: object) -> list[str]:
    return mismatches(parse_pattern(documented_json)[0], actual)


def test_matcher_accepts_an_answer_equal_to_the_documented_one():
    answer = {"count": 1, "results": [{"id": 5, "price": "41.50", "ok": True, "at": None, "lat": 40.6}]}
    documented_json = '{"count": 1, "results": [{"id": 5, "price": "41.50", "ok": true, "at": null, "lat": 40.6}]}'
    assert match(documented_json, answer) == []


def test_matcher_names_each_value_that_differs_with_its_place():
    answer = {"count": 2, "results": [{"id": 5, "name": "JFK and Queens"}, {"id": 1, "name": "JFK airport"}]}
    assert match('{"count": 2, "results": [{"id": 5, "name": "JFK"}, {"id": 13, "name": "JFK airport"}]}', answer) == [
        '.results[0].name: documented "JFK", answered "JFK and Queens"',
        ".results[1].id: documented 13, answered 1",
    ]


def test_matcher_elides_other_members_only_where_the_readme_writes_an_elision():
    answer = {"id": 8, "name": "Acme", "approved": True}
    assert match('{..., "approved": true}', answer) == []
    assert match('{"id": 8, "name": "Acme", "approved": true, ...}', answer) == []
    assert match('{"id": 8, "approved": true}', answer) == [
        "the body: the answer has members the README does not show (and no `...`): ['name']"
    ]
    assert match('{"id": 8, "owner": 2, ...}', answer) == [".owner: documented, but not in the answer"]


def test_matcher_elides_the_rest_of_a_list_only_at_its_end():
    answer = [{"id": 5}, {"id": 1}, {"id": 14}]
    assert match('[{"id": 5}, ...]', answer) == []
    assert match('[{"id": 5}, {"id": 1}, {"id": 14}, ...]', answer) == []  # "and maybe more"
    assert match('[{"id": 5}, {"id": 1}]', answer) == ["the body: documented 2 items, answered 3"]
    assert match('[{"id": 5}, {"id": 1}, {"id": 14}, {"id": 3}, ...]', answer) == [
        "the body: documented 4 or more items, answered 3"
    ]
    assert match('[{"id": 1}, ...]', answer) == ["[0].id: documented 1, answered 5"]
    with pytest.raises(ValueError, match="last item"):
        parse_pattern('[..., {"id": 14}]')


def test_matcher_reads_an_elision_in_a_string_as_any_characters_there():
    assert match('"8c1d04b2a7e95f3…"', "8c1d04b2a7e95f3d2e") == []
    assert match('"Rate limit: 1200 a minute ...; ..."', "Rate limit: 1200 a minute (key); retry") == []
    assert match('"..."', "") == []
    assert match('"8c1d04b2a7e95f3…"', "08c1d04b2a7e95f3") == [
        'the body: documented "8c1d04b2a7e95f3…", answered "08c1d04b2a7e95f3"'
    ]
    assert match('"Xk3v9QaL.…"', "Xk3v9QaL") != []  # the dot is written out
    assert match('"..."', 45) != []  # an elided string is still a string


def test_matcher_reads_an_elided_value_as_anything():
    assert match('{"a": ..., "b": ..., "c": ...}', {"a": None, "b": [1], "c": {"x": 1}}) == []
    assert match('{"a": ...}', {}) == [".a: documented, but not in the answer"]


def test_matcher_does_not_take_one_kind_of_value_for_another():
    assert match('{"price": "45.00"}', {"price": 45}) == ['.price: documented "45.00", answered 45']
    assert match('{"price": "45.00"}', {"price": "45.0"}) != []
    assert match('{"ok": true}', {"ok": 1}) != []
    assert match('{"n": 0}', {"n": False}) != []
    assert match('{"n": null}', {"n": 0}) != []
    assert match('{"lat": 40}', {"lat": 40.0}) == []  # one number
    assert match('{"a": {"b": 1}}', {"a": [1]}) == [".a: documented an object, answered [1]"]


def test_documented_answers_give_status_headers_and_body_and_leave_prose_out():
    doc = documented('201 {"id": 3, ...}: its areas are in public lookups\n(a note)')
    assert (doc.status, doc.headers, doc.body) == (201, {}, parse_pattern('{"id": 3, ...}')[0])
    assert documented("204: that token gets 401 from now on") == Documented(status=204)
    assert documented('200 (or 412 {"detail": "..."})') == Documented(status=200)
    assert documented("HTTP/1.1 304 Not Modified") == Documented(status=304)
    doc = documented('HTTP/1.1 200 OK\nX-RateLimit-Limit: 1200\n...\n{"count": 5, ...}')
    assert (doc.status, doc.headers) == (200, {"x-ratelimit-limit": "1200"})
    assert doc.body == parse_pattern('{"count": 5, ...}')[0]
    assert documented('ETag: "a14.1.3"') == Documented(status=None, headers={"etag": '"a14.1.3"'})
    assert documented('[{"id": 1}]').status is None
    with pytest.raises(ValueError, match="not a status, header or JSON"):
        documented("HTTP/1.1 200 OK ... X-RateLimit-Limit: 1200, X-RateLimit-Remaining: 1199")
    with pytest.raises(ValueError):
        documented('{"count": 5, "results": [')  # unfinished


def test_examples_are_read_as_the_shell_reads_them():
    markdown = """Text.

```sh
# a note, not an answer
curl -s -X POST http://127.0.0.1:8000/api/v1/providers/ -H "Authorization: Token $TOKEN" \\
  -H 'Content-Type: application/json' -d '{"name": "Acme",
       "currency": "USD"}'
# 201 {"id": 8,
#      "name": "Acme", ...}
curl -si 'http://127.0.0.1:8000/api/v1/lookup/?lat=1&lng=2' -d '{"a": "b|c"}' | grep -i etag   # its ETag

TOKEN=abc
```

- A list item:

  ```sh
  # (not checked: needs a receiver)
  curl -s http://127.0.0.1:8000/api/v1/webhooks/
  # 200 []
  ```
"""
    first, second, third = examples(markdown)
    assert first.line == 5 and first.checked
    assert first.answer == '201 {"id": 8,\n     "name": "Acme", ...}'
    request = request_of(first.command)
    assert (request.method, request.path) == ("POST", "/api/v1/providers/")
    assert (request.show_headers, request.grep) == (False, None)
    assert request.headers == {"Authorization": "Token $TOKEN", "Content-Type": "application/json"}
    assert json.loads(request.body) == {"name": "Acme", "currency": "USD"}
    assert second.answer == ""
    request = request_of(second.command)
    assert (request.method, request.path, request.body) == ("POST", "/api/v1/lookup/?lat=1&lng=2", '{"a": "b|c"}')
    assert (request.show_headers, request.grep) == (True, "etag")
    assert third.line == 19 and not third.checked
