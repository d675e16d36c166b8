"""Progress for long operator commands: a rich bar on a terminal, a few plain lines otherwise,
and a count per status at the end either way."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn


class Reporter(Protocol):
    def advance(self, status: str, amount: int = 1) -> None: ...

    def note(self, message: str) -> None: ...

    def set_total(self, total: int | None) -> None: ...


class Tally:
    """Counts per status, and the lines worth telling the operator (bad input lines, warnings)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.notes: list[str] = []

    def summary(self) -> str:
        parts = [f"{status}: {count}" for status, count in sorted(self.counts.items())]
        total = sum(self.counts.values())
        return f"{total} processed" + (f" ({', '.join(parts)})" if parts else "")


@contextmanager
def reporting(
    description: str, *, total: int | None = None, stream: TextIO | None = None
) -> Iterator[ProgressReporter]:
    """A reporter that draws a bar when ``stream`` is a terminal and stays quiet otherwise."""
    out = stream or sys.stderr
    console = Console(file=out)
    reporter = ProgressReporter(description, total, console)
    try:
        yield reporter
    finally:
        reporter.close()


class ProgressReporter:
    def __init__(self, description: str, total: int | None, console: Console) -> None:
        self.tally = Tally()
        self.console = console
        self.progress: Progress | None = None
        if console.is_terminal:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[statuses]}"),
                console=console,
                transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task(description, total=total, statuses="")

    def set_total(self, total: int | None) -> None:
        if self.progress is not None:
            self.progress.update(self.task, total=total)

    def advance(self, status: str, amount: int = 1) -> None:
        self.tally.counts[status] += amount
        if self.progress is not None:
            statuses = " ".join(f"{k}={v}" for k, v in sorted(self.tally.counts.items()))
            self.progress.update(self.task, advance=amount, statuses=statuses)

    def note(self, message: str) -> None:
        self.tally.notes.append(message)
        self.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
