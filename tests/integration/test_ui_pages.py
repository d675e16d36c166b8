"""The web UI's pages, through HTTP, on SQLite and PostgreSQL: sign-in and its cookie, what each
page shows, what it never shows (unmasked values to a reader, the webhook token), and how many
queries each page costs. The browser tests are in tests/ui/."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from cmdb_sync.app import create_app
from tests.conftest import WEBHOOK_TOKEN, make_settings, post_delivery
from tests.helpers import queries_sent

READER, ADMIN = "reader-token", "admin-token"
ORG = "60d54f3daccf2bbd6659f3ad"


@pytest.fixture
def ui(engine, migrated_url, seed):
    app = create_app(make_settings(migrated_url, api_tokens=[READER], api_admin_tokens=[ADMIN]))
    with TestClient(app) as client:
        for name in sorted(seed):
            post_delivery(client, seed[name])
        yield client


def sign_in(client: TestClient, token: str) -> None:
    response = client.post("/ui/login", data={"token": token, "next": "/ui"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/ui"


def queries_of(client: TestClient, path: str) -> tuple[int, str]:
    with queries_sent() as sent:
        response = client.get(path)
    assert response.status_code == 200, response.text
    return len(sent), response.text


def test_pages_ask_to_sign_in_and_a_rejected_token_says_so(ui) -> None:
    first = ui.get("/ui/envs?label_name=envType", follow_redirects=False)
    assert first.status_code == 302
    assert first.headers["location"] == "/ui/login?next=%2Fui%2Fenvs%3Flabel_name%3DenvType"
    rejected = ui.post("/ui/login", data={"token": "wrong", "next": "/ui/envs"}, follow_redirects=False)
    assert rejected.status_code == 303 and "rejected=1" in rejected.headers["location"]
    page = ui.get(rejected.headers["location"])
    assert "That token is not accepted" in page.text
    assert "cmdb_sync_session" not in ui.cookies


def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_clears_it(ui) -> None:
    response = ui.post("/ui/login", data={"token": READER, "next": "//evil.example/"}, follow_redirects=False)
    assert response.headers["location"] == "/ui"  # never off this site
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    assert ui.get("/ui").status_code == 200
    over_https = ui.post(
        "/ui/login", data={"token": READER}, headers={"X-Forwarded-Proto": "https"}, follow_redirects=False
    )
    assert "Secure" in over_https.headers["set-cookie"]
    out = ui.post("/ui/logout", follow_redirects=False)
    assert out.status_code == 303 and 'cmdb_sync_session=""' in out.headers["set-cookie"]
    ui.cookies.clear()
    assert ui.get("/ui", follow_redirects=False).status_code == 302


def test_the_ui_is_open_when_the_api_is(engine, migrated_url) -> None:
    with TestClient(create_app(make_settings(migrated_url))) as client:
        page = client.get("/ui")
        assert page.status_code == 200 and "Sign out" not in page.text
        assert client.get("/", follow_redirects=False).headers["location"] == "/ui"


def test_each_page_shows_its_data_in_a_few_queries(ui) -> None:
    sign_in(ui, ADMIN)
    count, text = queries_of(ui, "/ui")
    assert "myapp-demo" in text and "20240815144312-310" in text and count <= 4
    count, text = queries_of(ui, "/ui/envs?include_deleted=true&label_name=envType&label_value=test")
    assert "test-env" in text and "envType=test" in text and count <= 5
    count, text = queries_of(ui, f"/ui/apps/{ORG}/myapp-demo")
    assert "Environments" in text and count <= 14
    count, text = queries_of(ui, "/ui/change-orders/620321f073741507cb7d0cfd/32468993abb14653ae9d86cf5d1cac98")
    assert "myapp-demo-test" in text and "FAILED" in text and count <= 5
    count, text = queries_of(ui, f"/ui/history/env/{ORG}/myapp-demo/test-env")
    # one more than the versions need: what an archive took (journal_archives)
    assert "61c92a37ae805dbacc5b9f78" in text and "Delete" in text and count <= 6
    count, text = queries_of(ui, "/ui/journal?status=stale")
    assert "ecd0f8a7b6a6473bbbc3e5212ec33929" not in text or "stale" in text
    assert count <= 3


def test_a_reader_sees_masked_values_and_no_journal_and_nobody_sees_the_webhook_token(ui) -> None:
    post_delivery(ui, _group_with_a_secret())
    sign_in(ui, READER)
    page = ui.get(f"/ui/apps/{ORG}/myapp-demo?reveal=true").text
    assert "s3cret" not in page and "••••••" in page and "Reveal values" not in page
    assert ui.get("/ui/journal").status_code == 403
    sign_in(ui, ADMIN)
    assert "s3cret" not in ui.get(f"/ui/apps/{ORG}/myapp-demo").text
    assert "s3cret" in ui.get(f"/ui/apps/{ORG}/myapp-demo?reveal=true").text
    for path in ("/ui", "/ui/journal", "/ui/journal/tour-vars", f"/ui/apps/{ORG}/myapp-demo?reveal=true"):
        assert WEBHOOK_TOKEN not in ui.get(path).text.replace("[redacted]", ""), path


def test_as_of_pages_and_bad_input_are_pages_not_tracebacks(ui) -> None:
    sign_in(ui, ADMIN)
    then = ui.get(f"/ui/apps/{ORG}/myapp-demo?as_of=2024-07-29T07:08:00Z")
    assert then.status_code == 200 and "test-env" in then.text and "as it was at" in then.text
    assert ui.get("/ui/envs?as_of=tomorrow").status_code == 400
    assert "as_of" in ui.get("/ui/envs?as_of=tomorrow").text
    assert ui.get("/ui/apps/nope/nope").status_code == 404
    assert ui.get("/ui/history/nope/a/b/c").status_code == 404
    assert ui.get("/ui/envs?label_name=x&label_value=y&cursor=garbage").status_code == 400
    assert ui.get("/ui/envs?label_name=a&label_value=%00").status_code == 400  # PostgreSQL cannot hold NUL
    assert ui.get("/ui/apps/a%00/b").status_code == 400


def test_pages_walk_forward_and_back(ui, session_factory) -> None:
    from cmdb_sync.ingest import ingest
    from tests.helpers import app_event, raw

    for n in range(120):
        event_ = app_event("Create", 1000 + n, name=f"app-{n:03d}", event_id=f"p{n}")
        ingest(session_factory, event_["headers"], raw(event_))
    sign_in(ui, READER)
    first = ui.get("/ui").text
    assert "app-000" in first and "app-099" in first and "app-100" not in first
    next_link = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = ui.get("/ui" + next_link).text
    assert "app-100" in second and "myapp-demo" in second and "app-000" not in second
    previous = second.split('rel="prev" href="')[1].split('"')[0].replace("&amp;", "&")
    assert "app-000" in ui.get("/ui" + previous).text


def _group_with_a_secret() -> dict:
    return {
        "headers": {
            "X-AppStack-Event": "VariableGroup",
            "X-AppStack-Action": "Create",
            "X-AppStack-Token": WEBHOOK_TOKEN,
            "X-AppStack-App": "myapp-demo",
        },
        "body": {
            "id": "tour-vars",
            "orgId": ORG,
            "time": "2024-12-16T09:30:00+08:00",
            "objectKind": "VariableGroup",
            "objectAttributes": {"name": "prod-vars", "vars": [{"key": "DB_PASSWORD", "value": "s3cret"}]},
        },
    }


def test_a_time_before_the_year_1000_is_shown_with_four_digits(ui) -> None:
    from tests.helpers import app_event

    early = app_event("Update", "0999-05-01T02:03:04Z", name="early", event_id="early-1")
    post_delivery(ui, early)
    sign_in(ui, ADMIN)
    page = ui.get("/ui/journal/early-1")
    assert page.status_code == 200 and "0999-05-01 02:03:04" in page.text
