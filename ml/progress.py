"""Progress reporting for long jobs, owned by whoever runs them (the CLI draws bars on stderr).

Library code takes a `Bars` factory with tqdm's keyword arguments (`desc`, `total`, `unit`,
`initial`, `unit_scale`) and calls `update(n)` on what it returns; the default draws nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol


class Bar(Protocol):
    def update(self, n: float = 1) -> object: ...

    def __enter__(self) -> Bar: ...

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> object: ...


Bars = Callable[..., Bar]


class _Silent:
    def update(self, n: float = 1) -> None:
        return None

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def no_bars(**_options: Any) -> Bar:
    """A progress bar that shows nothing."""
    return _Silent()
