"""``create_app(settings)``: the Litestar application, its routes, and its one error path."""

from __future__ import annotations

import logging

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from cmdb_sync import __version__
from cmdb_sync.api.health import healthz, metrics, readyz
from cmdb_sync.api.inventory import InventoryController
from cmdb_sync.api.problems import problem_details_plugin
from cmdb_sync.api.webhooks import receive_webhook
from cmdb_sync.services import Services
from cmdb_sync.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> Litestar:
    """Build the server. Raises ConfigError when the configuration cannot be run safely."""
    settings.check_webhook_auth()
    if not settings.webhook_tokens:
        log.warning("no webhook token configured: accepting unauthenticated deliveries (as asked)")
    if not settings.api_tokens and not settings.api_admin_tokens:
        log.warning("no API token configured: the read API is open to anyone who can reach it")
    services = Services.from_settings(settings)

    def dispose() -> None:
        services.engine.dispose()

    return Litestar(
        route_handlers=[receive_webhook, InventoryController, healthz, readyz, metrics],
        state=State({"services": services}),
        plugins=[problem_details_plugin()],
        request_max_body_size=settings.max_body_bytes,
        on_shutdown=[dispose],
        openapi_config=OpenAPIConfig(
            title="cmdb-sync",
            version=__version__,
            description="System of record for Alibaba Cloud Yunxiao AppStack: webhook receiver and inventory API.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
    )


def app_factory() -> Litestar:
    """Entry point for the ASGI server's workers: settings from the environment."""
    return create_app(get_settings())
