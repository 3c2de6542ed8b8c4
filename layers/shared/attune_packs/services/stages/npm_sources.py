"""Where npm may fetch a pack's Node.js dependencies from: the registry only.

``package.json`` may name registry packages only (version ranges, tags, ``npm:`` aliases), not
local paths, Git repositories or URLs. A lockfile's ``resolved`` URLs are checked by the same
address rules as download URLs (:func:`attune_packs.sources.http.address_problem`): HTTPS, no
credentials, to one of the configured npm registry hosts (``NPM_REGISTRY_HOSTS``, default
``registry.npmjs.org``); an address literal must also be public, unless the operator allows it
(``DOWNLOAD_ALLOW_NETWORKS``). So ``https://169.254.170.2/...`` (CodeBuild's credentials
address) is refused with ``NPM_LOCK_INVALID`` before any build.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from attune_packs.errors import RequirementsError
from attune_packs.sources.http import AllowList, address_problem

DEFAULT_NPM_REGISTRY_HOSTS = ("registry.npmjs.org",)
_FORBIDDEN_SPEC_PREFIXES = (
    "file:",
    "link:",
    "git",
    "http:",
    "https:",
    "github:",
    "gitlab:",
    "bitbucket:",
    "workspace:",
)


@dataclass(frozen=True)
class NpmSourcePolicy:
    """The hosts a lockfile may resolve to, and the networks the operator allows beyond public ones."""

    hosts: frozenset[str] = frozenset(DEFAULT_NPM_REGISTRY_HOSTS)
    allow: AllowList = field(default_factory=AllowList)

    @classmethod
    def configured(cls, hosts: tuple[str, ...] = (), allow_networks: tuple[str, ...] = ()) -> NpmSourcePolicy:
        names = {h.strip().lower().rstrip(".") for h in hosts if h.strip()} or set(DEFAULT_NPM_REGISTRY_HOSTS)
        return cls(frozenset(names), AllowList.parse(allow_networks))


def resolved_url_problem(url: str, policy: NpmSourcePolicy) -> str | None:
    """Why npm may not fetch ``url`` (a lockfile's ``resolved``), or None."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port
    except ValueError:
        return "it is not a valid URL"
    if parts.scheme != "https":
        return "only https URLs are allowed"
    if parts.username is not None or parts.password is not None:
        return "URLs with credentials are not allowed"
    ip = _ip_literal(host)
    if policy.allow.allows(host, ip) if ip is not None else host in policy.allow.hosts:
        return None  # the operator widened the rules for this address or host
    problem = address_problem(ip) if ip is not None else None
    if problem is not None:
        return f"it points to {problem}"
    if host not in policy.hosts:
        return f"{host or 'no host'} is not a configured npm registry host"
    if port not in (None, 443):
        return f"port {port} is not the registry's"
    return None


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_node_sources(
    package_json: bytes, lockfile: bytes | None, lock_name: str | None, policy: NpmSourcePolicy | None = None
) -> bytes | None:
    """Refuse what would let a pack point npm elsewhere than the registry (local paths, Git, URLs,
    lockfile entries resolved to other hosts), check the lockfile, and return its canonical form
    for the environment hash: what ``npm ci --omit=dev`` installs (the non-dev entries), without
    the root package's own name and version, so two packs locking the same dependencies share one
    environment."""
    _check_package_specs(json.loads(package_json))
    if lockfile is None:
        return None
    lock = _lock_document(lockfile, lock_name)
    entries = lock_entries(lock, lock_name or "package-lock.json")
    _check_resolved(entries, lock_name, policy or NpmSourcePolicy())
    installed = {p: e for p, e in entries.items() if not e.get("dev")}
    return json.dumps({"lockfileVersion": lock["lockfileVersion"], "packages": installed}, sort_keys=True).encode()


def _check_package_specs(data: dict[str, Any]) -> None:
    for section in ("dependencies", "optionalDependencies"):
        for name, spec in (data.get(section) or {}).items():
            text = str(spec).strip()
            if text.startswith(_FORBIDDEN_SPEC_PREFIXES) or ("/" in text and not text.startswith("npm:")):
                raise RequirementsError(
                    f"package.json {section}.{name} = {text!r}: only registry packages (version ranges, tags or "
                    "npm: aliases) are allowed, not local paths, Git repositories or URLs",
                    error_code="REQUIREMENTS_FORBIDDEN",
                    details={"field": f"{section}.{name}", "spec": text},
                )


def _lock_document(lockfile: bytes, lock_name: str | None) -> dict[str, Any]:
    try:
        lock = json.loads(lockfile)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequirementsError(f"{lock_name} is not valid JSON: {exc}", error_code="NPM_LOCK_INVALID") from exc
    if not isinstance(lock, dict) or lock.get("lockfileVersion") not in (1, 2, 3):
        raise RequirementsError(
            f"{lock_name} is not an npm lockfile (lockfileVersion 1, 2 or 3 expected)", error_code="NPM_LOCK_INVALID"
        )
    return lock


def _check_resolved(entries: dict[str, dict[str, Any]], lock_name: str | None, policy: NpmSourcePolicy) -> None:
    for path, entry in entries.items():
        resolved = str(entry.get("resolved") or "")
        if entry.get("link"):
            raise RequirementsError(
                f"{lock_name}: {path} resolves to {resolved or 'a local link'!r}; only registry tarballs are allowed",
                error_code="REQUIREMENTS_FORBIDDEN",
                details={"entry": path, "resolved": resolved},
            )
        problem = resolved_url_problem(resolved, policy) if resolved else None
        if problem is not None:
            raise RequirementsError(
                f"{lock_name}: {path} resolves to {resolved!r}: {problem}; a lockfile may only resolve to the "
                f"npm registry ({', '.join(sorted(policy.hosts))}) over https",
                error_code="NPM_LOCK_INVALID",
                details={"entry": path, "resolved": resolved, "reason": problem},
            )


def lock_entries(lock: dict[str, Any], lock_name: str) -> dict[str, dict[str, Any]]:
    if isinstance(lock.get("packages"), dict):
        entries = {p: e for p, e in lock["packages"].items() if p}
    else:  # lockfileVersion 1: a tree of "dependencies"
        entries = {}
        pending = [("", lock.get("dependencies") or {})]
        while pending:
            prefix, tree = pending.pop()
            for name, entry in tree.items():
                if not isinstance(entry, dict):
                    raise RequirementsError(f"{lock_name}: {prefix}{name} is malformed", error_code="NPM_LOCK_INVALID")
                path = f"{prefix}node_modules/{name}"
                entries[path] = {k: v for k, v in entry.items() if k not in ("dependencies", "requires")}
                pending.append((f"{path}/", entry.get("dependencies") or {}))
    if not all(isinstance(e, dict) for e in entries.values()):
        raise RequirementsError(f"{lock_name}: malformed package entries", error_code="NPM_LOCK_INVALID")
    return entries
