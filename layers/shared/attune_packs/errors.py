"""One error hierarchy for the whole installer.

Every error carries a stable ``error_code`` (what clients and tests match on), a message a person
can act on, and whether retrying could help. Lambda reports the *class name* as ``errorType`` and
the state machine's ``ErrorEquals`` matches it, so class names are part of the contract: transient
failures are ``TransientError`` (or a subclass listed in the ASL's Retry), everything else is
terminal. Never branch on message text.
"""

from __future__ import annotations

from typing import Any


class AttuneError(Exception):
    """Base class: a failure with a stable code."""

    default_code = "INTERNAL_ERROR"
    retriable = False

    def __init__(self, message: str, *, error_code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code or self.default_code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "error": self.message,
            "error_code": self.error_code,
            "retriable": self.retriable,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


class TerminalError(AttuneError):
    """Retrying with the same input gives the same failure."""


class TransientError(AttuneError):
    """A fault that may pass: throttling, a timeout, a service hiccup."""

    default_code = "TRANSIENT"
    retriable = True


class ThrottledError(TransientError):
    default_code = "THROTTLED"


# --- caller and input errors -------------------------------------------------------------------


class InvalidRequestError(TerminalError):
    """The request itself is malformed (HTTP 400)."""

    default_code = "INVALID_REQUEST"


class ArchiveError(TerminalError):
    """An archive is unsafe, corrupt or not a pack (ARCHIVE_*, PACK_MANIFEST_MISSING, ...)."""

    default_code = "ARCHIVE_CORRUPT"


class ArchiveDigestMismatchError(ArchiveError):
    """A stored archive's bytes are not the ones its content-addressed key names: never installed."""

    default_code = "ARCHIVE_DIGEST_MISMATCH"


class ManifestError(TerminalError):
    """pack.yaml or a component file is invalid (MANIFEST_*, PACK_REF_INVALID, ...)."""

    default_code = "MANIFEST_INVALID"


class SourceError(TerminalError):
    """A source cannot be used: unknown pack, forbidden URL, bad ref (SOURCE_*, REF_INVALID...)."""

    default_code = "SOURCE_INVALID"


class SourceGoneError(TerminalError):
    """An archive that an earlier stage stored is no longer there."""

    default_code = "SOURCE_GONE"


class ChecksumMismatchError(TerminalError):
    default_code = "CHECKSUM_MISMATCH"


class DownloadError(TransientError):
    """A network download failed in a way that may pass (timeout, early close)."""

    default_code = "DOWNLOAD_FAILED"


class DependencyError(TerminalError):
    """Dependencies cannot be satisfied (DEPENDENCY_CONFLICT, DEPENDENCY_CYCLE, ...)."""

    default_code = "DEPENDENCY_CONFLICT"


class RequirementsError(TerminalError):
    default_code = "REQUIREMENTS_FORBIDDEN"


class BuildError(TerminalError):
    default_code = "BUILD_FAILED"


class RegistrationConflictError(TerminalError):
    """Another registration of the same pack won the race, or the version exists with other content."""

    default_code = "CONFLICT"


class SystemPackProtectedError(RegistrationConflictError):
    """An installed system pack (``system: true``) is removed or replaced without force (HTTP 409)."""

    default_code = "SYSTEM_PACK_PROTECTED"


class NotFoundError(TerminalError):
    default_code = "NOT_FOUND"


class ConfigurationError(TerminalError):
    """The deployment is misconfigured (a missing setting): our fault, not the caller's."""

    default_code = "CONFIGURATION_ERROR"


class IdempotencyMismatchError(TerminalError):
    """The same idempotency key (or execution name) was used with a different request (HTTP 409)."""

    default_code = "IDEMPOTENCY_MISMATCH"


class LockMismatchError(TerminalError):
    """``install --locked``: what the sources give now differs from the lockfile (HTTP 409).
    ``details`` lists every drift: pack, field, locked value, found value."""

    default_code = "LOCK_MISMATCH"


class InternalError(TerminalError):
    """A bug: an exception no stage expected, reported for the one pack it happened to (with the
    exception type in ``details``) while the rest of the batch goes on."""

    default_code = "INTERNAL_ERROR"
