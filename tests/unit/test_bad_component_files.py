"""A YAML error in any component file is that pack's error: its code, the file, line and column."""

from __future__ import annotations

import pytest

from attune_packs.domain.archive import PackArchive
from attune_packs.domain.manifest import read_pack
from attune_packs.errors import ManifestError
from testkit.pack_archives import in_memory_archive, pack_files

ACTION = "name: broken\nrunner_type: python-script\nentry_point: hello.py\n"

# (what is wrong, the file's text, the error code, line, column)
BAD_FILES = [
    ("syntax", ACTION + "parameters: {who: [\n", "MANIFEST_SYNTAX", 5, 1),
    ("duplicate key", ACTION + "name: again\n", "MANIFEST_DUPLICATE_KEY", 4, 1),
    ("anchor", ACTION + "a: &x 1\nb: *x\n", "MANIFEST_ALIAS_FORBIDDEN", 4, 4),
    ("tab", ACTION + "parameters:\n\twho: {type: string}\n", "MANIFEST_SYNTAX", 5, 1),
]


def archive_of(files: dict[str, str]) -> PackArchive:
    return in_memory_archive(files)


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "skip-validation"])
@pytest.mark.parametrize(("wrong", "text", "code", "line", "column"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_yaml_error_in_a_component_file_names_the_file_line_and_column(
    wrong: str, text: str, code: str, line: int, column: int, strict: bool
) -> None:
    archive = archive_of(pack_files("demo", extra={"actions/broken.yaml": text}))

    with pytest.raises(ManifestError) as raised:
        read_pack(archive, strict=strict)

    [problem] = raised.value.details
    assert raised.value.error_code == code, raised.value.message
    assert (problem["file"], problem["line"], problem["column"]) == ("actions/broken.yaml", line, column)
    assert "actions/broken.yaml" in raised.value.message


def test_a_component_of_the_wrong_type_names_its_file() -> None:
    archive = archive_of(pack_files("demo", extra={"actions/broken.yaml": "- a list\n- not a mapping\n"}))

    with pytest.raises(ManifestError) as raised:
        read_pack(archive)

    assert [p["file"] for p in raised.value.details] == ["actions/broken.yaml"]
