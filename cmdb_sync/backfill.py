"""Backfill: what exists now in AppStack, as snapshot events through the one pipeline.

Webhooks only tell what changes after cmdb-sync starts listening. A backfill lists an org's apps
and, for each, its envs, variable groups and orchestrations from the OpenAPI; each object becomes a
snapshot event timed at its fetch, with an id derived from the run and the object, and is ingested
like any delivery. Newer webhook state therefore wins (the snapshot is stale against it), and a
resumed run re-sends the same ids, which are duplicates: nothing is done twice.

Objects held for the org that the run did not see are gone from the source: they get Delete events,
unless that would delete more than ``max_delete`` of what is held, in which case nothing is deleted
and the report says so.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cmdb_sync.appstack import AppStackClient
from cmdb_sync.ingest import ingest as ingest_delivery
from cmdb_sync.models import App, BackfillRun, Event, stored_json
from cmdb_sync.progress import Reporter
from cmdb_sync.projections import LISTED
from cmdb_sync.times import iso_utc, now_utc, to_epoch_ms

ACTOR = "cmdb-sync-backfill"
# Yunxiao's OpenAPI writes some times as "2024-09-01 00:00:00": read in the service's zone, China.
SERVICE_ZONE = timezone(timedelta(hours=8))
_PLAIN_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?$")


def epoch_ms(value: Any) -> int | None:
    """A timestamp of the OpenAPI (epoch ms, ISO-8601, or 'YYYY-MM-DD HH:MM:SS') as epoch ms."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):  # NaN, Infinity: JSON as Python reads it
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC if not _PLAIN_TIME.match(text) else SERVICE_ZONE)
    return to_epoch_ms(parsed)


# --- OpenAPI shapes to webhook snapshots ---------------------------------------------------------


def app_snapshot(app: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": app.get("name"),
        "description": app.get("description"),
        "type": app.get("type") or "APP",
        "creatorId": app.get("creatorId"),
        "gmtCreate": epoch_ms(app.get("gmtCreate")),
    }


def env_snapshot(env: dict[str, Any], app_name: str) -> dict[str, Any]:
    return {
        "name": env.get("name"),
        "appName": env.get("appName") or app_name,
        "displayName": env.get("descriptiveName", env.get("displayName")),
        "description": env.get("description"),
        "creatorId": env.get("creatorId"),
        "gmtCreate": epoch_ms(env.get("gmtCreate")),
        "lockBy": env.get("lockBy"),
        "resourcePoolName": env.get("resourcePoolName"),
        "deployGroupName": env.get("deployGroupName"),
        "profiles": env.get("variableGroups", env.get("profiles")) or [],
        "spec": {
            "replicasManagement": env.get("replicasManagement"),
            "rolloutStrategy": env.get("rolloutStrategies"),
        },
        "labelList": env.get("labelList") or [],
    }


def variable_group_snapshot(group: dict[str, Any]) -> dict[str, Any]:
    listed = group.get("vars")
    if listed is None:
        listed = []
    return {
        "name": group.get("name"),
        "displayName": group.get("displayName"),
        "type": group.get("type"),
        # anything but a list goes as it came: the snapshot's validation fails its event, naming the field
        "vars": [
            {"key": v.get("key"), "value": v.get("value"), "description": v.get("description")}
            for v in listed
            if isinstance(v, dict)
        ]
        if isinstance(listed, list)
        else listed,
    }


def orchestration_snapshot(orchestration: dict[str, Any]) -> dict[str, Any]:
    snapshot = dict(orchestration)
    for key in ("gmtCreate", "gmtModified"):
        if key in snapshot:
            snapshot[key] = epoch_ms(snapshot[key])
    if isinstance(snapshot.get("revision"), dict):
        snapshot["revision"] = {**snapshot["revision"], "commitTime": epoch_ms(snapshot["revision"].get("commitTime"))}
    return snapshot


# --- the run -------------------------------------------------------------------------------------


@dataclass
class BackfillReport:
    run_id: str
    resumed: bool
    apps_seen: int = 0
    apps_skipped: int = 0
    to_delete: int = 0
    held: int = 0
    deletions_withheld: bool = False


def _event_id(run_id: str, *parts: str) -> str:
    digest = hashlib.sha256("\x1f".join((run_id, *parts)).encode()).hexdigest()
    return f"backfill-{digest[:32]}"


class Backfill:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        client: AppStackClient,
        *,
        org: str,
        app: str | None,
        max_delete: float,
        reporter: Reporter,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.session_factory = session_factory
        self.client = client
        self.org = org
        self.scope = app or ""
        self.max_delete = max_delete
        self.reporter = reporter
        self.clock = clock

    def send(
        self, run_id: str, kind: str, action: str, app: str | None, attributes: dict[str, Any], *identity: str
    ) -> str:
        """Ingest one snapshot (or Delete) as an event whose id is the run's and the object's: sent
        again by a resumed run, it is a duplicate."""
        body = {
            "id": _event_id(run_id, kind, action if action == "Delete" else "", *identity),
            "user": {"id": ACTOR},
            "orgId": self.org,
            "time": iso_utc(self.clock()),
            "objectKind": kind,
            "objectAttributes": attributes,
        }
        headers = {"X-AppStack-Event": kind, "X-AppStack-Action": action, "X-CmdbSync-Source": "backfill"}
        if app:
            headers["X-AppStack-App"] = app
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        status = ingest_delivery(self.session_factory, headers, raw).status
        self.reporter.advance(status)
        return status

    def _start_or_resume(self) -> tuple[BackfillRun, bool]:
        with self.session_factory() as session, session.begin():
            run = session.scalars(
                select(BackfillRun)
                .where(BackfillRun.org_id == self.org, BackfillRun.scope == self.scope)
                .where(BackfillRun.finished_at.is_(None))
                .order_by(BackfillRun.started_at.desc())
                .limit(1)
            ).first()
            if run is not None:
                return run, True
            run = BackfillRun(
                id=uuid.uuid4().hex, org_id=self.org, scope=self.scope, started_at=self.clock(), completed_apps=[]
            )
            session.add(run)
        return run, False

    def _mark(self, run_id: str, **values: Any) -> None:
        with self.session_factory() as session, session.begin():
            session.execute(update(BackfillRun).where(BackfillRun.id == run_id).values(**values))

    def run(self) -> BackfillReport:
        run, resumed = self._start_or_resume()
        report = BackfillReport(run_id=run.id, resumed=resumed)
        completed = list(run.completed_apps)
        if self.scope:
            found = self.client.app(self.scope)
            apps = [found] if found else []
        else:
            apps = list(self.client.apps())
        self.reporter.set_total(None)
        for app in apps:
            name = app.get("name")
            if not isinstance(name, str) or not name:
                self.reporter.note(f"skipped an app without a name: {json.dumps(app, ensure_ascii=False)[:200]}")
                continue
            report.apps_seen += 1
            if name in completed:
                report.apps_skipped += 1
                continue
            self._backfill_app(run.id, name, app)
            completed.append(name)
            self._mark(run.id, completed_apps=completed)
        self._delete_unseen(run, report)
        self._mark(run.id, finished_at=self.clock())
        return report

    def _backfill_app(self, run_id: str, name: str, app: dict[str, Any]) -> None:
        self.send(run_id, "App", "Update", name, app_snapshot(app), name)
        for env in self.client.envs(name):
            self.send(run_id, "Env", "Update", name, env_snapshot(env, name), name, str(env.get("name")))
        for group in self.client.variable_groups(name):
            owner = "" if group.get("type") == "GLOBAL" else name
            self.send(
                run_id,
                "VariableGroup",
                "Update",
                owner,
                variable_group_snapshot(group),
                owner,
                str(group.get("name")),
            )
        for orchestration in self.client.orchestrations(name):
            self.send(
                run_id,
                "AppOrchestration",
                "Update",
                name,
                orchestration_snapshot(orchestration),
                str(orchestration.get("sn")),
            )

    # --- what the source no longer lists ---

    def _unseen(self, session: Session, started_at: datetime) -> tuple[list[Any], int]:
        """Objects in scope held as existing, and which of them the run did not see."""
        unseen: list[Any] = []
        apps_stmt = select(App).where(App.org_id == self.org, App.deleted_at.is_(None))
        if self.scope:
            apps_stmt = apps_stmt.where(App.name == self.scope)
        apps = list(session.scalars(apps_stmt))
        gone_apps = {a.name for a in apps if a.version_at is None or a.version_at < started_at}
        unseen.extend(a for a in apps if a.name in gone_apps)
        living = [a.name for a in apps if a.name not in gone_apps]
        held = len(apps)
        for projection in LISTED:
            model: Any = projection.model
            if model is App:  # apps are above
                continue
            children = list(
                session.scalars(
                    select(model).where(
                        model.org_id == self.org, model.app_name.in_(living), model.deleted_at.is_(None)
                    )
                )
            )
            held += len(children)
            unseen.extend(c for c in children if c.version_at < started_at)
        return unseen, held

    def _delete_unseen(self, run: BackfillRun, report: BackfillReport) -> None:
        with self.session_factory() as session:
            unseen, report.held = self._unseen(session, run.started_at)
            last_snapshots = self._last_snapshots(session, [row.version_id for row in unseen])
        report.to_delete = len(unseen)
        if not unseen:
            return
        if len(unseen) > self.max_delete * report.held:
            report.deletions_withheld = True
            self.reporter.note(
                f"not deleting: the source no longer lists {len(unseen)} of the {report.held} objects held for "
                f"org {self.org}, more than --max-delete {self.max_delete:.0%}; nothing was deleted"
            )
            return
        for row in unseen:
            self._send_delete(run.id, row, last_snapshots.get(row.version_id))

    @staticmethod
    def _last_snapshots(session: Session, event_ids: list[str | None]) -> dict[str, dict[str, Any]]:
        """The attributes each object was last set from, so a Delete keeps them in its tombstone."""
        wanted = [i for i in event_ids if i]
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), 500):
            for event_id, body in session.execute(
                select(Event.id, Event.body).where(Event.id.in_(wanted[start : start + 500]))
            ):
                document = stored_json(body)
                attributes = document.get("objectAttributes") if isinstance(document, dict) else None
                if isinstance(attributes, dict):
                    found[event_id] = attributes
        return found

    def _send_delete(self, run_id: str, row: Any, attributes: dict[str, Any] | None) -> None:
        projection = next(p for p in LISTED if isinstance(row, p.model))
        assert projection.listed is not None
        app = row.name if isinstance(row, App) else row.app_name
        attrs = attributes or projection.listed.tombstone(row)
        self.send(run_id, projection.kind, "Delete", app, attrs, *projection.listed.key(row))


def parse_max_delete(text: str) -> float:
    """``10%``, ``10`` (a percentage) or ``0.1`` (a fraction) as a fraction in [0, 1]."""
    value = text.strip()
    percent = value.endswith("%")
    try:
        number = float(value.rstrip("%"))
    except ValueError:
        msg = f"--max-delete: {text!r} is not a percentage like 10% or a fraction like 0.1"
        raise ValueError(msg) from None
    fraction = number / 100 if percent or number > 1 else number
    if not 0 <= fraction <= 1:
        msg = f"--max-delete: {text!r} is not between 0% and 100%"
        raise ValueError(msg)
    return fraction
