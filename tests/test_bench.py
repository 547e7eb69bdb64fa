"""The bench table: the I/O floor's share of each engine row."""

from __future__ import annotations

from dataclasses import replace

from heygem_core.bench import IO_FLOOR, STAGES, BenchRow, format_table


def _row(engine: str, wall: float) -> BenchRow:
    return BenchRow(engine, "720p 2s", 50, 2.0, wall, dict.fromkeys(STAGES, 1.0), 200.0)


def test_floor_share_is_floor_over_engine_wall() -> None:
    floor = _row(IO_FLOOR, 1.0)
    engine = replace(_row("builtin", 4.0), floor_wall=floor.wall)
    assert engine.floor_share == 0.25
    lines = format_table([floor, engine]).splitlines()
    assert "I/O floor share" in lines[0]
    assert lines[2].count("| - |") >= 1 and "| 25% |" in lines[3]
