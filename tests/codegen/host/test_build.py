"""Host facts the compiler and tuner read: the last-level cache size."""
from __future__ import annotations

from pathlib import Path

from workbench.codegen.host.build import last_level_cache_bytes


def test_last_level_cache_is_the_largest_sysfs_cache(tmp_path: Path) -> None:
    for name, size in [("index0", "48K"), ("index1", "32K"), ("index2", "1024K"),
                       ("index3", "32768K")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "size").write_text(size + "\n")
    assert last_level_cache_bytes(tmp_path) == 32 << 20
    (tmp_path / "index4").mkdir()
    (tmp_path / "index4" / "size").write_text("64M\n")
    assert last_level_cache_bytes(tmp_path) == 64 << 20


def test_last_level_cache_falls_back_to_32_mib(tmp_path: Path) -> None:
    assert last_level_cache_bytes(tmp_path) == 32 << 20
    (tmp_path / "index0").mkdir()
    (tmp_path / "index0" / "size").write_text("unknown\n")
    assert last_level_cache_bytes(tmp_path) == 32 << 20
