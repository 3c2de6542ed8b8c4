"""The template as CloudFormation receives it: after `sam package` and the SAM transform (offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def synthesize(root: Path = ROOT) -> dict[str, Any]:
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse as parse

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    template = parse((root / "template.yaml").read_text())
    # `sam package` uploads local code folders and rewrites them to S3 URIs before the transform.
    for resource in template["Resources"].values():
        for key in ("CodeUri", "DefinitionUri", "ContentUri"):
            local = resource.get("Properties", {}).get(key)
            if isinstance(local, str):
                assert (root / local).exists(), local
                resource["Properties"][key] = f"s3://artifacts/{local.strip('/')}.zip"
    try:
        return dict(transform(template, {}, NoManagedPolicies()))
    except InvalidDocumentException as exc:  # pragma: no cover - shows every cause
        pytest.fail("; ".join(str(cause) for cause in exc.causes))


@pytest.fixture(scope="session")
def synthesized() -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the transform resolves pseudo parameters
        return synthesize()
