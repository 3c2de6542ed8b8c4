"""What the build-envs function receives, one of three shapes told apart by their fields.

Apart from the other build models: the discriminated union is a generic class that pydantic builds
as soon as it is defined, and only the build function needs it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, RootModel, Tag

from attune_packs.models.build import AsyncBuildRequest, BuildEnvsRequest, BuildTask


def _build_event_kind(event: Any) -> str:
    if isinstance(event, BaseModel):
        fields = set(type(event).model_fields)
    else:
        fields = set(event) if isinstance(event, dict) else set()
    if "task_token" in fields:
        return "map_item"
    return "async" if "async_build" in fields else "direct"


BuildEvent = Annotated[
    Annotated[BuildTask, Tag("map_item")]
    | Annotated[AsyncBuildRequest, Tag("async")]
    | Annotated[BuildEnvsRequest, Tag("direct")],
    Discriminator(_build_event_kind),
]


class BuildPackEnvsEvent(RootModel[BuildEvent]):
    """What the build-envs function receives: a Map item of the state machine (``task_token``), an
    asynchronous request of the HTTP API (``async_build``), or a direct stage request (``pack_paths``)."""

    model_config = ConfigDict(defer_build=True)
