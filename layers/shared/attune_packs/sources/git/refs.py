"""Ref and URL checks made before any network access, and choosing the object a ref names among the
refs a server advertises."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from attune_packs.errors import SourceError
from attune_packs.sources.http import Target, parse_target

_MAX_REF_LENGTH = 255
_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_ABBREVIATED_SHA = re.compile(r"[0-9a-f]{7,63}")
_VERSION_LIKE = re.compile(r"\d+(\.\d+)*([-+][0-9A-Za-z.-]+)?")
_SCP_LIKE = re.compile(r"^[^/:@\s]+@[^/:\s]+:|^[A-Za-z0-9.-]+:(?!//)[^\s]")
_FORBIDDEN_SCHEMES = {
    "file": "file://",
    "ssh": "ssh://",
    "git+ssh": "ssh://",
    "ssh+git": "ssh://",
    "git": "git://",
    "ftp": "ftp://",
    "ftps": "ftps://",
    "rsync": "rsync://",
}
_REF_FORBIDDEN_CHARS = set("~^:?*[\\")


# --- checks before any network access ------------------------------------------------------------


def _has_control_or_space(text: str) -> bool:
    return any(ch.isspace() or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text)


def check_ref(ref: str) -> str:
    """A branch, tag or commit name that cannot be mistaken for an option or a revision expression."""

    def invalid(problem: str) -> SourceError:
        return SourceError(f"Git ref {ref!r} is refused: {problem}", error_code="REF_INVALID")

    if not ref:
        raise invalid("it is empty")
    if len(ref) > _MAX_REF_LENGTH:
        raise invalid(f"it is longer than {_MAX_REF_LENGTH} characters")
    if ref.startswith("-"):
        raise invalid("it starts with '-', which a Git command would read as an option")
    if _has_control_or_space(ref):
        raise invalid("it contains spaces, newlines or other control characters")
    if ".." in ref:
        raise invalid("it contains '..'")
    if "@{" in ref or ref == "@":
        raise invalid("it contains '@{' (reflog syntax)")
    bad = sorted(_REF_FORBIDDEN_CHARS.intersection(ref))
    if bad:
        raise invalid(f"it contains {' '.join(repr(c) for c in bad)}, which Git does not allow in names")
    if ref.startswith("/") or ref.endswith("/") or "//" in ref:
        raise invalid("it has an empty path component")
    if ref.endswith(".") or ref.endswith(".lock"):
        raise invalid("it ends with '.' or '.lock'")
    if any(part.startswith(".") for part in ref.split("/")):
        raise invalid("a component starts with '.'")
    return ref


def check_git_url(url: str, *, allow_http: bool) -> Target:
    """Refuse every transport but https (and http where allowed) and anything option-like."""

    def forbidden(problem: str) -> SourceError:
        return SourceError(f"Git source {url!r} is refused: {problem}", error_code="SOURCE_URL_FORBIDDEN")

    if url.startswith("-"):
        raise forbidden("it starts with '-', which a Git command would read as an option")
    if "::" in url.split("/", 1)[0]:
        raise forbidden("Git remote helpers (ext::, fd:: and the like) can run commands; use https://")
    if _has_control_or_space(url):
        raise forbidden("it contains spaces, newlines or other control characters")
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in _FORBIDDEN_SCHEMES:
        raise forbidden(f"the {_FORBIDDEN_SCHEMES[scheme]} transport is not allowed; use https://")
    if not scheme and _SCP_LIKE.match(url):
        raise forbidden("scp-style SSH addresses (user@host:path) are not allowed; use https://")
    if ".." in url:
        raise forbidden("it contains '..'")
    target = parse_target(url, allow_http=allow_http)
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise forbidden("a repository URL has no query string or fragment")
    return target


def split_git_source(source: str) -> tuple[str, str | None]:
    """``https://host/org/repo.git@v1.2.0`` -> (``https://host/org/repo.git``, ``v1.2.0``)."""
    scheme, separator, rest = source.partition("://")
    if not separator:
        return source, None
    netloc, slash, path = rest.partition("/")
    if "@" not in path:
        return source, None
    path, _, ref = path.partition("@")
    return f"{scheme}://{netloc}{slash}{path}", ref


# --- choosing the commit -------------------------------------------------------------------------


@dataclass(frozen=True)
class WantedObject:
    sha: bytes  # hex object id (a commit or an annotated tag)
    name: str  # what it was found as: "refs/tags/v1.2.0", "HEAD", or the commit id
    advertised: bool  # the server listed it (unadvertised commits need server support)


def select_ref(refs: Mapping[bytes, bytes], ref: str | None, *, url: str = "the repository") -> WantedObject:
    """The object ``ref`` names among the server's refs: tags first, then branches (as git rev-parse)."""
    if ref is None or ref == "HEAD":
        head = refs.get(b"HEAD")
        if head is None:
            raise SourceError(
                f"{url} has no default branch (HEAD); name a branch, tag or commit with @ref or ref_spec",
                error_code="GIT_REF_NOT_FOUND",
            )
        return WantedObject(head, "HEAD", True)
    lowered = ref.lower()
    if _FULL_SHA.fullmatch(lowered):
        sha = lowered.encode()
        return WantedObject(sha, lowered, sha in set(refs.values()))
    candidates = [ref] if ref.startswith("refs/") else [f"refs/tags/{ref}", f"refs/heads/{ref}"]
    if _VERSION_LIKE.fullmatch(ref):
        candidates.append(f"refs/tags/v{ref}")  # StackStorm Exchange tags versions as v1.2.3
    for name in candidates:
        named = refs.get(name.encode())
        if named is not None:
            return WantedObject(named, name, True)
    if _ABBREVIATED_SHA.fullmatch(lowered):
        problem = "abbreviated commit ids cannot be resolved on a server: give all 40 hex digits"
    else:
        tags = sorted(k.decode(errors="replace")[10:] for k in refs if k.startswith(b"refs/tags/"))
        problem = "there is no such branch or tag" + (f" (tags: {', '.join(tags[:10])})" if tags else "")
    raise SourceError(f"{url}: ref {ref!r} not found: {problem}", error_code="GIT_REF_NOT_FOUND")


def ref_prefixes(ref: str | None) -> list[bytes] | None:
    """What to ask the server to list (protocol v2 filters on its side)."""
    if ref is None or ref == "HEAD":
        return [b"HEAD"]
    if _FULL_SHA.fullmatch(ref.lower()):
        return None
    if ref.startswith("refs/"):
        return [ref.encode()]
    prefixes = [b"refs/tags/" + ref.encode(), b"refs/heads/" + ref.encode()]
    if _VERSION_LIKE.fullmatch(ref):
        prefixes.append(b"refs/tags/v" + ref.encode())
    return prefixes
