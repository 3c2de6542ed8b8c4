"""The events handlers receive, kept as JSON files in ``tests/events/`` (one file per event shape).

``load_event("api_rest_request")`` returns a fresh copy each call, so a test may change it freely.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[1] / "tests" / "events"


def event_names() -> list[str]:
    return sorted(p.stem for p in EVENTS.glob("*.json"))


def load_event(name: str) -> dict[str, Any]:
    path = EVENTS / f"{name.removesuffix('.json')}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no event {name!r} in {EVENTS} (have: {', '.join(event_names())})")
    event: dict[str, Any] = json.loads(path.read_text())
    return event
