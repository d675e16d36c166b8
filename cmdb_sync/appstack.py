"""A small client of the AppStack OpenAPI: the reads ``backfill`` needs, with pagination and backoff.

Shapes and paths are those of ``APPSTACK_OPENAPI.md``. The central edition prefixes every path
with ``/organizations/{org}``; region editions (an org-specific domain) do not.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx

from cmdb_sync.errors import CmdbSyncError

log = logging.getLogger(__name__)

CENTRAL_BASE_URL = "https://openapi-rdc.aliyuncs.com"
EDITIONS = ("central", "region")
PAGE_SIZE = 100
MAX_ATTEMPTS = 8
RETRYABLE = frozenset({429, 500, 502, 503, 504})


class AppStackError(CmdbSyncError):
    """The OpenAPI refused or kept failing; the message says what to do."""


def _name(value: str) -> str:
    return quote(value, safe="")


class AppStackClient:
    def __init__(
        self,
        http: httpx.Client,
        *,
        org: str,
        edition: str = "central",
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = MAX_ATTEMPTS,
        base_delay: float = 0.5,
    ) -> None:
        if edition not in EDITIONS:
            msg = f"edition must be one of {', '.join(EDITIONS)}"
            raise AppStackError(msg)
        self.http = http
        self.prefix = "/oapi/v1/appstack" + (f"/organizations/{_name(org)}" if edition == "central" else "")
        self.sleep = sleep
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.requests = 0

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Full jitter on an exponential ceiling; a Retry-After in seconds is honoured as a floor."""
        ceiling = min(30.0, self.base_delay * 2 ** (attempt - 1))
        delay = random.uniform(0, ceiling)  # noqa: S311 - jitter, not security
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after and retry_after.isdigit():
            delay = max(delay, float(retry_after))
        return delay

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET a JSON document, backing off on 429 and 5xx and on transport errors."""
        url = self.prefix + path
        for attempt in range(1, self.max_attempts + 1):
            response: httpx.Response | None = None
            try:
                self.requests += 1
                response = self.http.get(url, params=params)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code in (401, 403):
                    msg = (
                        f"AppStack answered {response.status_code} to GET {url}: the token in "
                        "CMDB_SYNC_APPSTACK_TOKEN is missing, expired, or lacks read permission on "
                        "application delivery (应用交付) for this org"
                    )
                    raise AppStackError(msg)
                if response.status_code == 404:
                    return None
                if response.status_code not in RETRYABLE:
                    if response.is_error:
                        msg = f"AppStack answered {response.status_code} to GET {url}: {response.text[:300]}"
                        raise AppStackError(msg)
                    try:
                        return response.json()
                    except ValueError:
                        msg = f"AppStack answered GET {url} with something that is not JSON"
                        raise AppStackError(msg) from None
                problem = f"HTTP {response.status_code}"
            if attempt == self.max_attempts:
                msg = f"AppStack kept failing on GET {url} ({problem}) after {attempt} attempts; run backfill again to resume"
                raise AppStackError(msg)
            delay = self._delay(attempt, response)
            log.info("GET %s: %s, retrying in %.1fs", url, problem, delay)
            self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _keyset(self, path: str) -> Iterator[dict[str, Any]]:
        token: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {"pagination": "keyset", "orderBy": "id", "sort": "asc", "perPage": PAGE_SIZE}
            if token:
                params["nextToken"] = token
            page = self.get(path, params)
            yield from (item for item in _listed(page, "data", self.prefix + path) if isinstance(item, dict))
            token = page.get("nextToken") if isinstance(page, dict) else None
            if not token:
                return
            if not isinstance(token, str):
                raise AppStackError(_malformed(self.prefix + path, 'an object whose "nextToken" is a string'))
            if token in seen:  # a server that would be walked for ever
                msg = f"AppStack answered GET {self.prefix + path} with a nextToken it gave before: {token[:100]!r}"
                raise AppStackError(msg)
            seen.add(token)

    def apps(self) -> Iterator[dict[str, Any]]:
        return self._keyset("/apps:search")

    def app(self, name: str) -> dict[str, Any] | None:
        return self.get(f"/apps/{_name(name)}")

    def envs(self, app: str) -> Iterator[dict[str, Any]]:
        return self._keyset(f"/apps/{_name(app)}/envs")

    def variable_groups(self, app: str) -> list[dict[str, Any]]:
        path = f"/apps/{_name(app)}/variableGroups"
        groups = self.get(path)
        if groups is None:
            return []
        if not isinstance(groups, list):
            raise AppStackError(_malformed(self.prefix + path, "a list of variable groups"))
        return [g for g in groups if isinstance(g, dict)]

    def orchestrations(self, app: str) -> Iterator[dict[str, Any]]:
        """The app's orchestrations, each fetched whole (the list may hold summaries).

        The list's paging parameters are not documented: ``current``/``pageSize`` are sent, and the
        walk stops at the last page by ``pages``, at an empty page, or at a page with nothing new
        (a server that ignores ``current`` would otherwise be walked forever).
        """
        current = 1
        seen: set[str] = set()
        while True:
            path = f"/apps/{_name(app)}/orchestrations"
            page = self.get(path, {"current": current, "pageSize": PAGE_SIZE})
            records = _listed(page, "records", self.prefix + path)
            sns = [r["sn"] for r in records if isinstance(r, dict) and isinstance(r.get("sn"), str)]
            new = [sn for sn in sns if sn not in seen]
            for sn in new:
                seen.add(sn)
                full = self.get(f"/apps/{_name(app)}/orchestrations/{_name(sn)}")
                if isinstance(full, dict):
                    yield full
            pages = page.get("pages") if isinstance(page, dict) else None
            if not new or (isinstance(pages, int) and current >= pages):
                return
            current += 1


def _listed(page: Any, field: str, url: str) -> list[Any]:
    """What a page lists under ``field`` (nothing when the page or the field is absent). A page of
    another shape is an AppStackError: read as empty, its objects would count as gone from the
    source, and the backfill would delete them."""
    if page is None:
        return []
    if isinstance(page, dict):
        listed = page.get(field)
        if listed is None:
            return []
        if isinstance(listed, list):
            return listed
    raise AppStackError(_malformed(url, f'an object whose "{field}" is a list'))


def _malformed(url: str, expected: str) -> str:
    return f"AppStack answered GET {url} with JSON that is not {expected}"
