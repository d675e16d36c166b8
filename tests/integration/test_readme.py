"""The README's examples run as written, against the state its quick start builds.

The quick start is read from the README's first ``sh`` block: its ``cmdb-sync import`` and its
``cmdb-sync serve`` (with the environment it sets) are run as written, in a fresh directory, the
server on a free port instead of 8000. Then every later ``sh`` block runs, in order, under bash;
one that is followed by a ``json`` block must print that JSON (compared as data; a ``received_at``
is the time the example ran, so only its presence is compared). Blocks that show templates with
placeholders are ``text`` and are not run.

To refresh the answers after a deliberate change: ``README_EXAMPLES_WRITE=1 .venv/bin/pytest
tests/integration/test_readme.py`` writes what each example printed into its ``json`` block.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
QUICK_START_URL = "http://127.0.0.1:8000"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)
VOLATILE = {"received_at"}


@dataclass
class Block:
    language: str
    text: str
    start: int  # offsets in the README, for rewriting an answer
    end: int


@dataclass
class Example:
    command: Block
    answer: Block | None


def blocks(readme: str) -> list[Block]:
    return [Block(m.group(1), m.group(2), m.start(2), m.end(2)) for m in FENCE.finditer(readme)]


def examples(readme: str) -> tuple[Block, list[Example]]:
    found = blocks(readme)
    shell = [i for i, block in enumerate(found) if block.language == "sh"]
    assert shell, "the README has no sh block"
    quick_start, rest = found[shell[0]], shell[1:]
    pairs = []
    for i in rest:
        following = found[i + 1] if i + 1 < len(found) else None
        answer = following if following is not None and following.language == "json" else None
        if answer is not None and not re.fullmatch(r"```\s*```json\n", readme[found[i].end : answer.start]):
            answer = None  # prose between them: the json block belongs to something else
        pairs.append(Example(found[i], answer))
    return quick_start, pairs


def quick_start_steps(quick_start: Block) -> tuple[str, str]:
    """The quick start's import and serve commands, as written (the install steps are this venv's)."""
    parts = [part.strip() for part in quick_start.text.splitlines()[0].split("&&")]
    (importing,) = [part for part in parts if part.startswith(".venv/bin/cmdb-sync import")]
    (serving,) = [part for part in parts if re.search(r"(^|\s)\.venv/bin/cmdb-sync serve", part)]
    return importing, serving


def with_this_venv(command: str) -> str:
    return command.replace(".venv/bin/", f"{BIN}/")


def normalise(value: Any, reference: Any) -> Any:
    """``value`` with each volatile field replaced by the reference's, where both have it."""
    if isinstance(value, dict) and isinstance(reference, dict):
        return {
            key: (reference[key] if key in VOLATILE and key in reference else normalise(item, reference.get(key)))
            for key, item in value.items()
        }
    if isinstance(value, list) and isinstance(reference, list):
        return [normalise(item, ref) for item, ref in zip(value, reference + [None] * len(value), strict=False)]
    return value


def pretty(value: Any, indent: int = 0, width: int = 100) -> str:
    """JSON as the README shows it: what fits on a line stays on one line."""
    flat = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if len(flat) + indent <= width or not isinstance(value, dict | list) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, list):
        inner = [pad + pretty(item, indent + 2, width) for item in value]
        return "[\n" + ",\n".join(inner) + "\n" + " " * indent + "]"
    inner = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {pretty(v, indent + 2, width)}" for k, v in value.items()]
    return "{\n" + ",\n".join(inner) + "\n" + " " * indent + "}"


@pytest.fixture(scope="module")
def quick_start(tmp_path_factory) -> tuple[Path, dict[str, str], str]:
    """The quick start's state: the seed imported, the server up with the quick start's tokens."""
    readme = README.read_text(encoding="utf-8")
    block, _ = examples(readme)
    importing, serving = quick_start_steps(block)
    cwd = tmp_path_factory.mktemp("quick-start")
    (cwd / "tests").symlink_to(ROOT / "tests")  # the quick start runs in a clone, where tests/ is
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMDB_SYNC_")}
    imported = subprocess.run(
        ["bash", "-c", with_this_venv(importing)], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    port = free_port()
    process = subprocess.Popen(
        ["bash", "-c", f"{with_this_venv(serving)} --port {port}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(cwd / "serve.log").open("wb"),
        start_new_session=True,  # bash and the server it starts: stopped together at the end
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, process, cwd / "serve.log")
    yield cwd, env, base
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=20)


def test_the_quick_start_is_two_commands_install_and_serve_then_the_tests() -> None:
    readme = README.read_text(encoding="utf-8")
    block, _ = examples(readme)
    lines = block.text.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("python3 -m venv .venv && .venv/bin/pip install") and "cmdb-sync serve" in lines[0]
    assert lines[1].startswith(".venv/bin/pytest")
    assert readme.index(block.text) < 200, "the quick start is the README's first lines"


def test_every_readme_example_answers_what_the_readme_shows(quick_start) -> None:
    cwd, env, base = quick_start
    readme = README.read_text(encoding="utf-8")
    _, pairs = examples(readme)
    assert len(pairs) >= 10
    writing = os.environ.get("README_EXAMPLES_WRITE") == "1"
    replacements: list[tuple[Block, str]] = []
    failures = []
    for example in pairs:
        script = with_this_venv(example.command.text.replace(QUICK_START_URL, base))
        ran = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
        )
        where = (
            f"README line {readme.count(chr(10), 0, example.command.start) + 1}: {example.command.text.strip()[:80]}"
        )
        if ran.returncode != 0:
            failures.append(f"{where}\n  exit {ran.returncode}: {ran.stderr.strip()[-500:]}")
            continue
        if example.answer is None:
            continue
        try:
            got = json.loads(ran.stdout)
        except ValueError:
            failures.append(f"{where}\n  printed no JSON: {ran.stdout[:300]!r}")
            continue
        if writing:
            replacements.append((example.answer, pretty(got) + "\n"))
            continue
        try:
            shown = json.loads(example.answer.text)
        except ValueError as exc:
            failures.append(f"{where}\n  the README's answer is not JSON: {exc}")
            continue
        if normalise(got, shown) != shown:
            failures.append(f"{where}\n  answered: {json.dumps(got, ensure_ascii=False)[:2000]}")
    if writing and replacements:
        for block, text in sorted(replacements, key=lambda r: r[0].start, reverse=True):
            readme = readme[: block.start] + text + readme[block.end :]
        README.write_text(readme, encoding="utf-8")
    assert not failures, "\n".join(failures)


ANSWERS = ROOT / "cmdb_sync" / "examples" / "answers"


def test_the_openapi_examples_are_real_answers(quick_start) -> None:
    """The answers the OpenAPI document shows (cmdb_sync/examples/answers) are what the server
    answers on the quick start's state; README_EXAMPLES_WRITE=1 writes them anew."""
    _, _, base = quick_start
    files = sorted(ANSWERS.glob("*.json"))
    assert files
    with httpx.Client(base_url=base, headers={"Authorization": "Bearer reader-token"}) as client:
        for path in files:
            example = json.loads(path.read_text(encoding="utf-8"))
            response = client.get(example["path"])
            assert response.status_code == 200, (path.name, response.text)
            if os.environ.get("README_EXAMPLES_WRITE") == "1":
                example["answer"] = response.json()
                path.write_text(json.dumps(example, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
                continue
            assert normalise(response.json(), example["answer"]) == example["answer"], path.name
        document = client.get("/schema/openapi.json").json()
    env = document["paths"]["/api/v1/apps/{app}/envs/{env}"]["get"]["responses"]["200"]["content"]["application/json"]
    assert env["examples"]["env_as_of"]["value"]["name"] == "test-env"
