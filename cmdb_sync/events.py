"""The delivery envelope and the attributes of each object kind, as AppStack sends them.

Two layers on purpose: the envelope (``id``, ``objectKind``, ``time``...) decides whether a delivery
is accepted and journaled; the per-kind attribute models decide whether it can be projected. A
delivery whose attributes do not fit is still journaled, as ``failed``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

import msgspec
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from cmdb_sync.errors import BadDelivery, ProjectionError
from cmdb_sync.times import parse_event_time


def _epoch_ms_or_null(value: object) -> datetime | None:
    """Payload timestamps (``gmtCreate``, ``startedAt``...): epoch ms or null."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        msg = "must be epoch milliseconds or null"
        raise ValueError(msg)
    return parse_event_time(value)


EpochMs = Annotated[datetime | None, BeforeValidator(_epoch_ms_or_null)]


def scrub_nul(value: Any) -> Any:
    """Replace U+0000 in every string: PostgreSQL text cannot hold it, and both databases must agree."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {scrub_nul(k): scrub_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_nul(v) for v in value]
    return value


@dataclass(frozen=True)
class Envelope:
    """What the journal needs of a delivery; ``time_error`` keeps it journaled when ``time`` is bad."""

    id: str
    kind: str
    action: str | None
    app: str | None
    org_id: str | None
    actor_id: str | None
    time: datetime | None
    time_error: str | None
    attributes: Any


def _utf8_header(value: str) -> str:
    """HTTP header bytes arrive decoded as Latin-1; an app name sent as UTF-8 (a Chinese name, say)
    is recovered here, and anything that is not UTF-8 is kept as it came."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def header(headers: dict[str, str], name: str) -> str | None:
    """Case-insensitive header lookup; an empty value counts as absent."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return _utf8_header(value) if value != "" else None
    return None


def _optional_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _may_hold_nul(raw: bytes | str) -> bool:
    """Whether a parsed body can hold U+0000: valid JSON writes it only as the escape ``\\u0000``
    (a UTF-16 or -32 body, full of zero bytes, is scrubbed without looking closer)."""
    if isinstance(raw, str):
        return "\\u0000" in raw or "\x00" in raw
    return b"\\u0000" in raw or b"\x00" in raw


# Rules of acceptance beyond JSON itself (README, "Receiving"): the envelope's names fit an index
# entry, and a body is Unicode text nested no deeper than a real AppStack payload ever is.
MAX_NAME_CHARS = 256
MAX_DEPTH = 64
_SURROGATE_TEXT = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")
_SURROGATE_BYTES = re.compile(rb"\xed[\xa0-\xbf]|\\u[dD][89a-fA-F]")
# what the webhook and an import say of what breaks those rules (the import: of its lines too)
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"
LONE_SURROGATE_BODY = "body: holds a lone surrogate (\\ud800-\\udfff without its pair), which is not Unicode text"

_strict_json = msgspec.json.Decoder().decode  # 2-3x the standard library's speed
_NOT_STRICT = (msgspec.DecodeError, msgspec.ValidationError, UnicodeError, RecursionError)


def json_loads(text: str | bytes) -> Any:
    """``json.loads``, faster: msgspec first, the standard library for what msgspec refuses (NaN,
    a lone surrogate...), which then decodes it or raises as it always did."""
    return json_decoded(text)[0]


def json_decoded(text: str | bytes) -> tuple[Any, bool]:
    """``json_loads``'s value, and whether msgspec decoded it (strict JSON: no NaN, no lone
    surrogate, nothing the standard library alone takes)."""
    try:
        return _strict_json(text), True
    except _NOT_STRICT:
        return json.loads(text), False


def _not_unicode(raw: bytes | str, body: Any) -> bool:
    """Whether the body holds a lone surrogate (sent as bytes ED A0..BF or as an escape ``\\ud800``),
    which is not Unicode and which no database can store. Pairs (an emoji) are fine."""
    pattern = _SURROGATE_TEXT if isinstance(raw, str) else _SURROGATE_BYTES
    if not pattern.search(raw):  # type: ignore[arg-type]
        return False
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _too_deep(raw: bytes | str, body: Any) -> bool:
    opening = raw.count("[") + raw.count("{") if isinstance(raw, str) else raw.count(b"[") + raw.count(b"{")
    if opening < MAX_DEPTH:
        return False
    stack = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, dict | list))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, dict | list))
    return False


def _name(value: str | None, field: str) -> str | None:
    if value is not None and len(value) > MAX_NAME_CHARS:
        msg = f"{field}: longer than {MAX_NAME_CHARS} characters"
        raise BadDelivery(msg, field=field)
    return value


def parse_envelope(headers: dict[str, str], raw: bytes | str) -> tuple[Envelope, Any]:
    """Validate a delivery enough to journal it; raise BadDelivery (400) naming the field otherwise.

    Returns the envelope and the parsed body. The body is decoded by msgspec (a fifth of a replay's
    time went to ``json.loads``); what msgspec does not take (NaN, a lone surrogate, UTF-16, a
    number out of range, anything not JSON) is decoded by ``json.loads`` and judged as before.
    Where msgspec agrees to decode, both give the same objects; and it takes no lone surrogate,
    so a body it decoded needs no looking for one.
    """
    try:
        body, strict = json_decoded(raw)
    except RecursionError:
        msg = f"body: {TOO_DEEP}"
        raise BadDelivery(msg, field="body") from None
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"body: not valid JSON ({exc})"
        raise BadDelivery(msg, field="body") from None
    if not isinstance(body, dict):
        msg = f"body: must be a JSON object, got {type(body).__name__}"
        raise BadDelivery(msg, field="body")
    if not strict and _not_unicode(raw, body):
        raise BadDelivery(LONE_SURROGATE_BODY, field="body")
    if _too_deep(raw, body):
        msg = f"body: {TOO_DEEP}"
        raise BadDelivery(msg, field="body")
    event_id = body.get("id")
    if isinstance(event_id, int) and not isinstance(event_id, bool):
        event_id = str(event_id)
    if not isinstance(event_id, str) or not event_id.strip():
        msg = "id: required, a non-empty string"
        raise BadDelivery(msg, field="id")
    kind = body.get("objectKind")
    if not isinstance(kind, str) or not kind.strip():
        msg = "objectKind: required, a non-empty string"
        raise BadDelivery(msg, field="objectKind")
    header_kind = header(headers, "X-AppStack-Event")
    if header_kind is not None and header_kind != kind:
        msg = f"X-AppStack-Event: header says {header_kind!r} but objectKind is {kind!r}"
        raise BadDelivery(msg, field="X-AppStack-Event")
    time: datetime | None = None
    time_error: str | None = None
    try:
        time = parse_event_time(body.get("time"))
    except ValueError as exc:
        time_error = str(exc) if body.get("time") is not None else "time: required"
    user = body.get("user")
    actor = _optional_text(user, "id") if isinstance(user, dict) else None
    if _may_hold_nul(raw):
        body = scrub_nul(body)
    envelope = Envelope(
        id=_name(scrub_nul(event_id), "id"),  # type: ignore[arg-type]
        kind=_name(scrub_nul(kind), "objectKind"),  # type: ignore[arg-type]
        action=_name(scrub_nul(header(headers, "X-AppStack-Action")), "X-AppStack-Action"),
        app=_name(scrub_nul(header(headers, "X-AppStack-App")), "X-AppStack-App"),
        org_id=_name(_optional_text(body, "orgId"), "orgId"),
        actor_id=_name(scrub_nul(actor), "user.id"),
        time=time,
        time_error=time_error,
        attributes=body.get("objectAttributes"),
    )
    return envelope, body


# --- attributes of each kind -------------------------------------------------------------------


class Attributes(BaseModel):
    """AppStack attributes: camelCase, unknown fields ignored, wrong types refused."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class LabelAttrs(Attributes):
    namespace: str | None = None
    name: str
    value: str | None = None
    display_name: str | None = Field(None, alias="displayName")
    display_value: str | None = Field(None, alias="displayValue")


class AppAttrs(Attributes):
    name: str
    description: str | None = None
    type: str | None = None
    creator_id: str | None = Field(None, alias="creatorId")
    gmt_create: EpochMs = Field(None, alias="gmtCreate")


class ProfileAttrs(Attributes):
    name: str
    display_name: str | None = Field(None, alias="displayName")
    type: str | None = None


class EnvSpecAttrs(Attributes):
    rollout_strategy: list[Any] | None = Field(None, alias="rolloutStrategy")
    replicas_management: str | None = Field(None, alias="replicasManagement")


class EnvAttrs(Attributes):
    name: str
    app_name: str | None = Field(None, alias="appName")
    display_name: str | None = Field(None, alias="displayName")
    description: str | None = None
    creator_id: str | None = Field(None, alias="creatorId")
    gmt_create: EpochMs = Field(None, alias="gmtCreate")
    lock_by: str | None = Field(None, alias="lockBy")
    resource_pool_name: str | None = Field(None, alias="resourcePoolName")
    deploy_group_name: str | None = Field(None, alias="deployGroupName")
    profiles: list[ProfileAttrs] | None = None
    spec: EnvSpecAttrs | None = None
    label_list: list[LabelAttrs] | None = Field(None, alias="labelList")


class VarAttrs(Attributes):
    key: str
    value: str | None = None
    description: str | None = None


class VariableGroupAttrs(Attributes):
    name: str
    display_name: str | None = Field(None, alias="displayName")
    type: str | None = None
    vars: list[VarAttrs] | None = None


class RevisionAttrs(Attributes):
    sha: str | None = None
    message: str | None = None
    author: str | None = None
    commit_time: EpochMs = Field(None, alias="commitTime")


class PlaceholderAttrs(Attributes):
    name: str
    description: str | None = None
    type: str | None = None
    value: Any = None
    overridable: bool | None = None
    rule: Any = None
    value_source: str | None = Field(None, alias="valueSource")
    predefined: bool | None = None
    rs_type: str | None = Field(None, alias="rsType")


class ComponentAttrs(Attributes):
    name: str
    kind: str | None = None
    description: str | None = None
    content: str | None = None
    priority: int | None = None
    type: str | None = None


class OrchestrationAppAttrs(Attributes):
    name: str


class OrchestrationAttrs(Attributes):
    sn: str
    name: str | None = None
    app: OrchestrationAppAttrs | None = None
    storage_type: str | None = Field(None, alias="storageType")
    format: str | None = None
    type: str | None = None
    label_policy: str | None = Field(None, alias="labelPolicy")
    suitable_resource_types: list[str] | None = Field(None, alias="suitableResourceTypes")
    revision: RevisionAttrs | None = None
    creator_id: str | None = Field(None, alias="creatorId")
    gmt_create: EpochMs = Field(None, alias="gmtCreate")
    modifier_id: str | None = Field(None, alias="modifierId")
    gmt_modified: EpochMs = Field(None, alias="gmtModified")
    label_list: list[LabelAttrs] | None = Field(None, alias="labelList")
    placeholder_list: list[PlaceholderAttrs] | None = Field(None, alias="placeholderList")
    component_list: list[ComponentAttrs] | None = Field(None, alias="componentList")


class TaskAttrs(Attributes):
    sn: str | None = None
    name: str | None = None
    locator: str | None = None
    state: str | None = None
    started_at: EpochMs = Field(None, alias="startedAt")
    ended_at: EpochMs = Field(None, alias="endedAt")
    strategy_content: str | None = Field(None, alias="strategyContent")
    context_content: str | None = Field(None, alias="contextContent")
    engine_task_result_content: str | None = Field(None, alias="engineTaskResultContent")
    deliveries: str | None = None
    spec: str | None = None


class StageAttrs(Attributes):
    sn: str | None = None
    name: str | None = None
    state: str | None = None
    started_at: EpochMs = Field(None, alias="startedAt")
    ended_at: EpochMs = Field(None, alias="endedAt")
    tasks: list[TaskAttrs] | None = None


class JobAttrs(Attributes):
    sn: str | None = None
    name: str | None = None
    env_name: str | None = Field(None, alias="envName")
    state: str | None = None
    started_at: EpochMs = Field(None, alias="startedAt")
    ended_at: EpochMs = Field(None, alias="endedAt")
    stages: list[StageAttrs] | None = None


class ChangeOrderAttrs(Attributes):
    sn: str
    app_name: str | None = Field(None, alias="appName")
    name: str | None = None
    type: str | None = None
    version: str | None = None
    tag: str | None = None
    state: str | None = None
    source_type: str | None = Field(None, alias="sourceType")
    source_sn: str | None = Field(None, alias="sourceSn")
    started_at: EpochMs = Field(None, alias="startedAt")
    creator: str | None = None
    gmt_create: EpochMs = Field(None, alias="gmtCreate")
    jobs: list[JobAttrs] | None = None


class CodeRepoAttrs(Attributes):
    repo_url: str | None = Field(None, alias="repoUrl")


class ChangeRequestAttrs(Attributes):
    sn: str
    app_name: str | None = Field(None, alias="appName")
    name: str | None = None
    state: str | None = None
    type: str | None = None
    branch: str | None = None
    origin_branch: str | None = Field(None, alias="originBranch")
    origin_branch_revision: str | None = Field(None, alias="originBranchRevision")
    owner_id: str | None = Field(None, alias="ownerId")
    creator_id: str | None = Field(None, alias="creatorId")
    gmt_create: EpochMs = Field(None, alias="gmtCreate")
    app_code_repo: CodeRepoAttrs | None = Field(None, alias="appCodeRepo")
    ext_info: CodeRepoAttrs | None = Field(None, alias="extInfo")


class ReleaseContextAttrs(Attributes):
    trigger_mode: str | None = Field(None, alias="triggerMode")
    start_time: EpochMs = Field(None, alias="startTime")
    end_time: EpochMs = Field(None, alias="endTime")


class ReleaseStageExecutionAttrs(Attributes):
    release_workflow_sn: str = Field(alias="releaseWorkflowSn")
    release_stage_sn: str = Field(alias="releaseStageSn")
    engine_instance_id: str = Field(alias="engineInstanceId")
    state: str | None = None
    context: ReleaseContextAttrs | None = None


T = TypeVar("T", bound=Attributes)


def parse_attributes(model: type[T], attributes: Any) -> T:
    """Attributes of one kind, or a ProjectionError that says which field is wrong and why."""
    if not isinstance(attributes, dict):
        msg = f"objectAttributes: must be a JSON object, got {type(attributes).__name__}"
        raise ProjectionError(msg)
    try:
        return model.model_validate(attributes)
    except ValidationError as exc:
        problems = "; ".join(
            "objectAttributes." + ".".join(str(p) for p in err["loc"]) + f": {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise ProjectionError(problems) from None
