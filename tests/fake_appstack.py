"""A fake AppStack OpenAPI for the backfill tests: the documented shapes, keyset and page
pagination, and injectable 429 / 500 / 401 answers. Served through httpx.MockTransport."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote

import httpx

TOKEN = "pat-good"


@dataclass
class Failure:
    pattern: str
    status: int
    times: int  # how many matching requests fail; -1: all of them


@dataclass
class Garbled:
    pattern: str
    payload: Any  # answered with 200 instead of the real answer
    times: int  # how many matching requests get it; -1: all of them


@dataclass
class FakeAppStack:
    org: str
    edition: str = "central"
    page_size: int = 2
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    envs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    groups: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    orchestrations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    garbled: list[Garbled] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    hits: Counter[str] = field(default_factory=Counter)

    @property
    def prefix(self) -> str:
        base = "/oapi/v1/appstack"
        return f"{base}/organizations/{self.org}" if self.edition == "central" else base

    def client(self, token: str = TOKEN) -> httpx.Client:
        return httpx.Client(
            base_url="https://appstack.test",
            headers={"x-yunxiao-token": token},
            transport=httpx.MockTransport(self.handle),
        )

    def fail(self, pattern: str, status: int, times: int = 1) -> None:
        self.failures.append(Failure(pattern, status, times))

    def garble(self, pattern: str, payload: Any, times: int = -1) -> None:
        self.garbled.append(Garbled(pattern, payload, times))

    @staticmethod
    def _json(status: int, payload: Any) -> httpx.Response:
        return httpx.Response(
            status,
            content=json.dumps(payload, ensure_ascii=False).encode(),
            headers={"content-type": "application/json"},
        )

    def _error(self, status: int, code: str) -> httpx.Response:
        return self._json(status, {"errorCode": code, "errorMessage": code, "httpStatus": status, "requestId": "r"})

    def _keyset(self, items: list[dict[str, Any]], params: httpx.QueryParams) -> httpx.Response:
        assert params.get("pagination") == "keyset" and params.get("orderBy") == "id", "keyset pagination is required"
        start = int(params.get("nextToken") or 0)
        size = min(int(params.get("perPage", 100)), self.page_size)
        page = items[start : start + size]
        more = start + size < len(items)
        return self._json(200, {"data": page, "nextToken": str(start + size) if more else None})

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = unquote(request.url.path)
        self.requests.append(path)
        self.hits[path] += 1
        if request.headers.get("x-yunxiao-token") != TOKEN:
            return self._error(401, "InvalidTokenError")
        if (failure := _take(self.failures, path)) is not None:
            return self._error(failure.status, "TooManyRequests" if failure.status == 429 else "SystemError")
        if (garbled := _take(self.garbled, path)) is not None:
            return self._json(200, garbled.payload)
        if not path.startswith(self.prefix):
            return self._error(404, "NotFound")
        rest = path[len(self.prefix) :]
        params = request.url.params
        if rest == "/apps:search":
            return self._keyset(list(self.apps.values()), params)
        match = re.fullmatch(r"/apps/([^/]+)(/.*)?", rest)
        if not match or match.group(1) not in self.apps:
            return self._error(404, "NotFound")
        app, tail = match.group(1), match.group(2) or ""
        if tail == "":
            return self._json(200, self.apps[app])
        if tail == "/envs":
            return self._keyset(self.envs.get(app, []), params)
        if tail == "/variableGroups":
            return self._json(200, self.groups.get(app, []))
        if tail == "/orchestrations":
            records = self.orchestrations.get(app, [])
            current, size = int(params.get("current", 1)), min(int(params.get("pageSize", 10)), self.page_size)
            page = records[(current - 1) * size : current * size]
            pages = max(1, -(-len(records) // size))
            summaries = [{"sn": o["sn"], "name": o.get("name")} for o in page]
            return self._json(
                200, {"current": current, "pageSize": size, "pages": pages, "records": summaries, "total": len(records)}
            )
        orchestration = re.fullmatch(r"/orchestrations/(.+)", tail)
        if orchestration:
            for o in self.orchestrations.get(app, []):
                if o["sn"] == orchestration.group(1):
                    return self._json(200, o)
        return self._error(404, "NotFound")


def sample(org: str = "org-1") -> FakeAppStack:
    """Two apps (one with a Chinese name), envs over several pages, groups, orchestrations."""
    fake = FakeAppStack(org=org)
    fake.apps = {
        "shop": {"name": "shop", "description": "the shop", "creatorId": "u1", "gmtCreate": 1722235582000},
        "商城": {"name": "商城", "description": None, "creatorId": "u2", "gmtCreate": "2024-09-01 00:00:00"},
    }
    fake.envs = {
        "shop": [
            {
                "name": name,
                "appName": "shop",
                "descriptiveName": f"{name} 环境",
                "description": None,
                "creatorId": "u1",
                "gmtCreate": 1722236764000,
                "deployGroupName": "k8s",
                "resourcePoolName": "default",
                "replicasManagement": "USER",
                "lockBy": None,
                "state": "RUNNING",
                "variableGroups": [{"name": "shop-vars", "displayName": "Shop vars", "type": "APP"}],
                "labelList": [
                    {
                        "namespace": "default",
                        "name": "envType",
                        "value": label,
                        "displayName": "环境级别",
                        "displayValue": label,
                    }
                ],
                "rolloutStrategies": [{"locator": "*", "deployType": "Rolling", "batchMode": "Auto"}],
            }
            for name, label in (("dev", "dev"), ("staging", "test"), ("prod", "production"))
        ],
        "商城": [{"name": "prod", "appName": "商城", "descriptiveName": "生产", "labelList": []}],
    }
    fake.groups = {
        "shop": [
            {
                "name": "shop-vars",
                "displayName": "Shop vars",
                "type": "APP",
                "vars": [{"key": "K", "value": "V", "description": "d"}],
            },
            {"name": "global-vars", "displayName": "Global", "type": "GLOBAL", "vars": []},
        ]
    }
    fake.orchestrations = {
        "shop": [
            {
                "sn": f"shop@{kind}",
                "name": "shop",
                "app": {"name": "shop"},
                "format": "MANIFEST",
                "storageType": "BUILTIN",
                "type": "AppBuiltInOrchestration",
                "suitableResourceTypes": [kind],
                "revision": {"sha": "abc", "message": "init", "author": "u1", "commitTime": "2024-07-29T07:10:27.934Z"},
                "labelList": [],
                "labelPolicy": "NONE",
                "placeholderList": [{"name": "image.backend", "type": "string", "value": "NULL", "overridable": True}],
                "componentList": [{"name": "svc", "kind": "Service", "content": "---", "priority": 1, "type": kind}],
            }
            for kind in ("KUBERNETES", "HOST", "ECS")
        ]
    }
    return fake


Rule = TypeVar("Rule", Failure, Garbled)


def _take(rules: list[Rule], path: str) -> Rule | None:
    """The first rule whose pattern matches ``path`` and that has times left, one time used."""
    for rule in rules:
        if rule.times != 0 and re.search(rule.pattern, path):
            rule.times -= 1 if rule.times > 0 else 0
            return rule
    return None
