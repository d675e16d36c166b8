"""The OpenAPI document and its pages: security schemes, operation ids, the webhook's request
(which the handler reads raw, so it is described here), and Swagger UI served from the package,
so the page works without the internet."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from litestar import Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Parameter,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.static_files import create_static_files_router

from cmdb_sync import __version__
from cmdb_sync.api.auth import ACCESS, PUBLIC
from cmdb_sync.events import MAX_NAME_CHARS

SWAGGER_ASSETS = "/schema/assets"
REDOC_ASSETS = "/schema/redoc-assets"
BEARER = "bearerToken"  # the read API: CMDB_SYNC_API_TOKENS / CMDB_SYNC_API_ADMIN_TOKENS
WEBHOOK = "webhookToken"  # the webhook: X-AppStack-Token, CMDB_SYNC_WEBHOOK_TOKENS
API_SECURITY: list[dict[str, list[str]]] = [{BEARER: []}]
WEBHOOK_SECURITY: list[dict[str, list[str]]] = [{WEBHOOK: []}]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def operation_id(route_handler: Any, http_method: Any, path_components: Any) -> str:
    """``listApps``, ``getEnv``, ``receiveWebhook``: the handler's name, stable across versions."""
    return _camel(route_handler.handler_name)


def openapi_config() -> OpenAPIConfig:
    from swagger_ui_bundle import swagger_ui_path

    del swagger_ui_path  # imported here only to fail early when the package is missing
    return OpenAPIConfig(
        title="cmdb-sync",
        version=__version__,
        description="System of record for Alibaba Cloud Yunxiao AppStack: webhook receiver and inventory API.",
        operation_id_creator=operation_id,
        components=Components(
            security_schemes={
                BEARER: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="A token of CMDB_SYNC_API_TOKENS, or of CMDB_SYNC_API_ADMIN_TOKENS for the "
                    "journal and reveal=true. With neither set, the read API is open.",
                ),
                WEBHOOK: SecurityScheme(
                    type="apiKey",
                    name="X-AppStack-Token",
                    security_scheme_in="header",
                    description="AppStack's Secret Token: one of CMDB_SYNC_WEBHOOK_TOKENS.",
                ),
            }
        ),
        render_plugins=[
            SwaggerRenderPlugin(
                js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
                css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
                standalone_preset_js_url=f"{SWAGGER_ASSETS}/swagger-ui-standalone-preset.js",
                favicon=f"<link rel='icon' type='image/png' href='{SWAGGER_ASSETS}/favicon-32x32.png'>",
            ),
            RedocRenderPlugin(
                js_url=f"{REDOC_ASSETS}/redoc.standalone.js",
                google_fonts=False,
                favicon=f"<link rel='icon' type='image/png' href='{SWAGGER_ASSETS}/favicon-32x32.png'>",
            ),
        ],
        openapi_router=Router("/schema", route_handlers=[], include_in_schema=False, opt={ACCESS: PUBLIC}),
    )


def docs_assets() -> list[Router]:
    """Swagger UI's files (from swagger-ui-bundle) and Redoc's (shipped in cmdb_sync/static/redoc)."""
    from swagger_ui_bundle import swagger_ui_path

    redoc = resources.files("cmdb_sync") / "static" / "redoc"
    return [
        create_static_files_router(
            SWAGGER_ASSETS, directories=[swagger_ui_path], opt={ACCESS: PUBLIC}, include_in_schema=False
        ),
        create_static_files_router(
            REDOC_ASSETS, directories=[str(redoc)], opt={ACCESS: PUBLIC}, include_in_schema=False
        ),
    ]


# --- the webhook's request -----------------------------------------------------------------------

_TEXT = Schema(type=OpenAPIType.STRING)
# what the receiver keeps of a name: within MAX_NAME_CHARS (a longer one is a 400 naming the field),
# and for an id or a kind, not blank
_BOUNDED = Schema(type=OpenAPIType.STRING, max_length=MAX_NAME_CHARS)
_NAME = replace(_BOUNDED, pattern=r"\S")
_ENVELOPE = Schema(
    type=OpenAPIType.OBJECT,
    required=["id", "objectKind"],
    properties={
        "id": Schema(
            one_of=[_NAME, Schema(type=OpenAPIType.INTEGER)],
            description="the delivery's id (a number is read as its digits): a second delivery of it is a duplicate",
        ),
        "user": Schema(type=OpenAPIType.OBJECT, properties={"id": _BOUNDED}, description="who did it"),
        "orgId": replace(_BOUNDED, description="the organization"),
        "time": Schema(
            one_of=[Schema(type=OpenAPIType.INTEGER), _TEXT],
            description="event time: epoch milliseconds, as a number or a string, or ISO-8601 with an offset",
        ),
        "objectKind": replace(
            _NAME,
            description="App, Env, VariableGroup, AppOrchestration, ChangeOrder, ChangeRequest or ReleaseStageExecution",
        ),
        "objectAttributes": Schema(type=OpenAPIType.OBJECT, description="a full snapshot of the object"),
    },
)
_HEADERS = [
    ("X-AppStack-Event", False, "the object kind; when sent, it must equal objectKind"),
    ("X-AppStack-Action", False, "Create, Update, Delete or StatusUpdate; without it the delivery is unsupported"),
    ("X-AppStack-App", False, "the app; for a VariableGroup, empty means an org-level group"),
]


def _examples() -> dict[str, Example]:
    examples = {}
    for path in sorted((resources.files("cmdb_sync") / "examples").iterdir()):
        if path.name.endswith(".json"):
            delivery = json.loads(path.read_text(encoding="utf-8"))
            examples[path.name.removesuffix(".json")] = Example(
                summary=f"{delivery['headers']['X-AppStack-Event']} {delivery['headers']['X-AppStack-Action']}",
                value=delivery["body"],
            )
    return examples


@dataclass
class WebhookOperation(Operation):
    """The webhook reads its body raw (it is journaled verbatim), so Litestar cannot infer it."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="An AppStack webhook delivery, as AppStack sends it.",
            content={"application/json": OpenAPIMediaType(schema=_ENVELOPE, examples=_examples())},
        )
        self.parameters = [
            Parameter(name=name, param_in="header", required=required, schema=_BOUNDED, description=description)
            for name, required, description in _HEADERS
        ]


# --- answers, for the routes a reader learns by example ------------------------------------------


def _answers(names: tuple[str, ...]) -> dict[str, Example]:
    """Real answers on the README quick start's state (cmdb_sync/examples/answers; a test keeps
    them equal to what the server answers)."""
    examples = {}
    for name in names:
        answer = json.loads((resources.files("cmdb_sync") / "examples" / "answers" / f"{name}.json").read_text("utf-8"))
        examples[name] = Example(summary=f"GET {answer['path']}", value=answer["answer"])
    return examples


def answered_by(*names: str) -> type[Operation]:
    """An operation whose 200 answer carries these examples."""

    @dataclass
    class Answered(Operation):
        def __post_init__(self) -> None:
            ok = (self.responses or {}).get("200")
            content = getattr(ok, "content", None) or {}
            if "application/json" in content:
                content["application/json"].examples = _answers(names)

    return Answered
