"""The registry of projected kinds.

Adding a kind is: its module here (attribute model in ``events``, a pure ``snapshot`` of an
event, and its ``PROJECTION`` with the facts the rest of cmdb-sync reads: tables, actions, where
the app is named), its tables in ``models`` and one migration, its tests, and one line in ``PROJECTIONS``
below. Rebuilds, metrics, archive import, backfill and the test helpers derive what they need
from the registry. The README's "Adding an event kind" says the same for a newcomer.
"""

from __future__ import annotations

from sqlalchemy import Table

from cmdb_sync.models import Base
from cmdb_sync.projections import (
    app,
    change_order,
    change_request,
    env,
    orchestration,
    release_stage_execution,
    variable_group,
)
from cmdb_sync.projections.common import Projection

PROJECTIONS: tuple[Projection, ...] = (
    app.PROJECTION,
    env.PROJECTION,
    variable_group.PROJECTION,
    orchestration.PROJECTION,
    change_order.PROJECTION,
    change_request.PROJECTION,
    release_stage_execution.PROJECTION,
)

REGISTRY: dict[str, Projection] = {projection.kind: projection for projection in PROJECTIONS}
KNOWN_ACTIONS: frozenset[str] = frozenset().union(*(projection.actions for projection in PROJECTIONS))
LISTED = tuple(projection for projection in PROJECTIONS if projection.listed is not None)
"""The kinds backfill lists from the AppStack OpenAPI, apps first."""


def projection_tables() -> list[Table]:
    """Every projected table, children before their parents (the order a rebuild empties them in)."""
    projected = {table for projection in PROJECTIONS for table in projection.tables}
    return [table for table in reversed(Base.metadata.sorted_tables) if table in projected]


def object_tables() -> list[Table]:
    """Each kind's own table (not its children): what every batch looks objects up in by key."""
    return [projection.table for projection in PROJECTIONS]
