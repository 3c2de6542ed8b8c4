"""The table's key schema has one owner: ``attune_packs/data/`` (and the DynamoDB adapter, which
speaks the key attribute names to DynamoDB). Nothing else in the production tree names a key
attribute or builds a key value, so the layout can change in one place."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = [ROOT / "layers", ROOT / "functions", ROOT / "cli"]
OWNERS = [
    ROOT / "layers/shared/attune_packs/data",
    ROOT / "layers/shared/attune_packs/adapters/dynamodb.py",
]
# Key attribute names as string literals, and the key values' prefixes and fixed sort keys.
KEY_ATTRIBUTE = re.compile(r"""["'](PK|SK|GSI1PK|GSI1SK)["']|\bGSI1(PK|SK)\b""")
KEY_VALUE = re.compile(r"""["'](PACK|VERSION|COMPONENT|TOKEN|INSTALL|INDEX)#|["'](CURRENT|TOKENS|PACKS)["']""")


def owned(path: Path) -> bool:
    return any(path == owner or owner in path.parents for owner in OWNERS)


def offences(pattern: re.Pattern[str]) -> list[str]:
    found = []
    for top in PRODUCTION:
        for path in sorted(top.rglob("*.py")):
            if owned(path) or "/tests/" in path.as_posix():
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_no_key_attribute_is_named_outside_the_data_package() -> None:
    assert offences(KEY_ATTRIBUTE) == [], "use attune_packs.data (one module per aggregate) instead"


def test_no_key_value_is_built_outside_the_data_package() -> None:
    assert offences(KEY_VALUE) == [], "use attune_packs.data (one module per aggregate) instead"


def test_the_scan_sees_the_owners_and_would_catch_an_offence(tmp_path: Path) -> None:
    # The owners do hold the schema (so the scan reads what it should), and a stray literal is caught.
    owner_text = "\n".join(p.read_text() for p in (ROOT / "layers/shared/attune_packs/data").glob("*.py"))
    assert KEY_ATTRIBUTE.search(owner_text) and KEY_VALUE.search(owner_text)
    assert KEY_ATTRIBUTE.search('item = {"PK": pk}') and KEY_ATTRIBUTE.search("x['GSI1SK']")
    assert KEY_VALUE.search('table.get_item(f"PACK#{ref}", "CURRENT")')
    assert not KEY_ATTRIBUTE.search("PKG = 1; pk_name = 'pk'")
