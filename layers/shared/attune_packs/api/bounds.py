"""Bounds checked on a request body before anything parses it: its size and its nesting depth.

``json.loads`` recurses once per nested array or object: a 200 KB body nested 100,000 deep raises
``RecursionError`` (a 5xx if uncaught). The scan below walks the text once, without recursion,
skipping string contents, and refuses a body deeper than ``MAX_JSON_DEPTH`` before parsing.
"""

from __future__ import annotations

# JSON request bodies (API Gateway itself accepts 10 MB; nothing of this API needs more).
MAX_BODY_BYTES = 256 * 1024
# Deep enough for every model of the API (the deepest, a pack's config, is bounded by this too).
MAX_JSON_DEPTH = 32
# multipart/form-data uploads (POST /packs/upload): API Gateway hands Lambda the body base64-encoded
# and a synchronous invocation carries at most 6 MB, so the raw body must stay under ~4.4 MB.
MAX_MULTIPART_BYTES = 4 * 2**20


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """The nesting depth of a JSON text, stopping as soon as it exceeds ``limit`` (returns limit + 1).
    Brackets inside strings do not count; the text need not be valid JSON."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif char in "]}":
            depth = max(0, depth - 1)
    return deepest
