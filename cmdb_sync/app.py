"""``create_app(settings)``: the Litestar application, its routes, and its one error path."""

from __future__ import annotations

import logging
import sys

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide

from cmdb_sync.api.auth import provide_principal, require_token
from cmdb_sync.api.deployments import DeploymentsController
from cmdb_sync.api.health import healthz, metrics, readyz
from cmdb_sync.api.history import HistoryController
from cmdb_sync.api.inventory import InventoryController
from cmdb_sync.api.journal import JournalController
from cmdb_sync.api.openapi import docs_assets, openapi_config
from cmdb_sync.api.params import provide_db
from cmdb_sync.api.problems import problem_details_plugin
from cmdb_sync.api.state import ServerState, set_aside_what_lives_forever
from cmdb_sync.api.webhooks import receive_webhook
from cmdb_sync.settings import Settings, get_settings
from cmdb_sync.ui.pages import root, template_config, ui_router

log = logging.getLogger(__name__)

SWITCH_INTERVAL_SECONDS = 0.0001


def create_app(settings: Settings) -> Litestar:
    """Build the server. Raises ConfigError when the configuration cannot be run safely."""
    settings.check_webhook_auth()
    if not settings.webhook_tokens:
        log.warning("no webhook token configured: accepting unauthenticated deliveries (as asked)")
    if not settings.api_tokens and not settings.api_admin_tokens:
        log.warning("no API token configured: the read API is open to anyone who can reach it")
    state = ServerState.from_settings(settings)
    return Litestar(
        route_handlers=[
            receive_webhook,
            InventoryController,
            DeploymentsController,
            JournalController,
            HistoryController,
            healthz,
            readyz,
            metrics,
            *docs_assets(),
            root,
            ui_router(),
        ],
        # closed by default: a route without opt={ACCESS: PUBLIC} needs a read token (when any is set)
        guards=[require_token],
        dependencies={
            "db": Provide(provide_db),
            "who": Provide(provide_principal, sync_to_thread=False),
        },
        state=State({"server": state}),
        plugins=[problem_details_plugin()],
        request_max_body_size=settings.max_body_bytes,
        on_startup=[state.start],
        on_shutdown=[state.stop],
        openapi_config=openapi_config(),
        template_config=template_config(),
    )


def app_factory() -> Litestar:
    """Entry point for the ASGI server's workers: settings from the environment.

    A process's own writer thread (outside ``serve``, whose workers hand deliveries to the serve
    process: ``handoff``) gives up the GIL at every database round trip and waits to get it back
    while the event loop runs; at Python's default 5 ms switch interval that wait, a dozen times
    per batch, was most of a delivery's latency (measured: p50 18 ms under 16 senders). Under
    serve the workers' threads are those of the synchronous routes."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    app = create_app(get_settings())
    app.on_startup.append(set_aside_what_lives_forever)  # after the state's own start
    return app
