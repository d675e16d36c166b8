"""The web UI in a real browser (Debian's chromium, driven by Playwright): what a person does."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.ui.conftest import ADMIN, ORG, READER


def sign_in(page, token: str, start: str = "/ui") -> None:
    page.goto(start)
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def test_a_wrong_token_is_told_so(page) -> None:
    sign_in(page, "not-a-token")
    expect(page.locator("#rejected")).to_contain_text("not accepted")


def test_sign_in_then_app_then_env_then_change_order(page) -> None:
    sign_in(page, READER)
    expect(page.get_by_role("heading", name="Apps")).to_be_visible()
    page.get_by_label("Search apps").fill("myapp")
    expect(page.locator("#results tbody tr")).to_have_count(3)  # the seed's app in three orgs
    page.locator(f'a[href="/ui/apps/{ORG}/myapp-demo"]').click()
    expect(page.get_by_role("heading", name="myapp-demo")).to_be_visible()
    prod = page.locator("#env-prod")
    expect(prod).to_contain_text("envType=production")
    expect(prod).to_contain_text("registry.example.com/demo/backend:2024-12-16")
    prod.get_by_role("link", name="20241216-1").click()
    expect(page.get_by_role("heading", name=re.compile("Change order 20241216-1"))).to_be_visible()
    expect(page.get_by_role("region", name="job prod")).to_contain_text("backend")
    expect(page.get_by_role("region", name="job prod")).to_contain_text("(300 s)")


def test_filter_envs_by_two_labels_and_find_an_image(page) -> None:
    sign_in(page, READER, "/ui/envs")
    page.get_by_label("label name 1").fill("envType")
    page.get_by_label("label value 1").fill("production")
    page.get_by_label("label name 2").fill("region")
    page.get_by_label("label value 2").fill("cn-beijing")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("prod-bj")
    page.goto("/ui/envs")
    page.get_by_label("Where does this image run?").fill("demo/backend:2024-12")
    expect(page.locator("#results tbody tr")).to_have_count(1)
    expect(page.locator("#results tbody tr").first).to_contain_text("prod")
    expect(page).to_have_url(re.compile(r"artifact=demo%2Fbackend"))


def test_page_forward_and_back(page) -> None:
    sign_in(page, READER)
    expect(page.get_by_text("app-000", exact=True)).to_be_visible()
    page.get_by_role("link", name="Next →").click()
    expect(page.get_by_text("myapp-demo", exact=True).first).to_be_visible()
    expect(page.get_by_text("app-000", exact=True)).to_have_count(0)
    page.get_by_role("link", name="← Previous").click()
    expect(page.get_by_text("app-000", exact=True)).to_be_visible()
    page.go_back()
    expect(page.get_by_text("app-000", exact=True)).to_have_count(0)


def test_a_reader_sees_masked_values_an_admin_may_reveal_them(page) -> None:
    sign_in(page, READER, f"/ui/apps/{ORG}/myapp-demo?reveal=true")
    expect(page.get_by_role("heading", name="Variable groups")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("s3cret-value")
    expect(page.locator(".masked").first).to_be_visible()
    expect(page.get_by_role("link", name="Journal")).to_have_count(0)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/login"))
    sign_in(page, ADMIN, f"/ui/apps/{ORG}/myapp-demo")
    page.get_by_role("link", name="Reveal values").click()
    expect(page.locator("body")).to_contain_text("s3cret-value")


def test_history_and_as_of(page) -> None:
    sign_in(page, READER, f"/ui/history/env/{ORG}/myapp-demo/test-env")
    versions = page.locator("ol.versions > li")
    expect(versions).to_have_count(3)
    expect(versions.first).to_contain_text("Delete")
    page.goto(f"/ui/apps/{ORG}/myapp-demo")
    page.get_by_label("As of").fill("2024-07-29T07:08:00Z")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("status")).to_contain_text("2024-07-29T07:08:00Z")
    expect(page.locator("#env-test-env")).to_contain_text("envType=test")
    expect(page.locator("#env-prod")).to_have_count(0)


def test_the_journal_shows_a_failed_delivery_to_an_admin(page) -> None:
    sign_in(page, ADMIN, "/ui/journal?status=stale")
    page.locator("tbody tr a").first.click()
    expect(page.get_by_role("heading", name=re.compile("Delivery"))).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text("stale")


def test_sign_out_ends_the_session(page) -> None:
    sign_in(page, READER)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.goto("/ui/envs")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))


def test_keyboard_reaches_the_content_and_a_phone_gets_no_sideways_scroll(browser, server) -> None:
    context = browser.new_context(base_url=server, viewport={"width": 390, "height": 844})
    page = context.new_page()
    sign_in(page, READER, "/ui/envs")
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("Tab")
    expect(page.locator(".skip")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="cmdb-sync")).to_be_focused()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 2, width
    context.close()
