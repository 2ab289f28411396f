"""Tuner: spaces counted, every measurement logged, the best replayed without measuring."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workbench.codegen.host import tune
from workbench.codegen.host.build import last_level_cache_bytes
from workbench.codegen.host.tune import (LOG_VERSION, CacheEvictor, TuningLog, TuningLogError,
    conv_space, layer_signature, narrow_vector, tune_layer, tune_network)
from workbench.codegen.lr import conv_layer

from ..helpers import pattern_pruned


def _layer(o: int = 8, c: int = 8, k: int = 3):
    rng = np.random.default_rng(0)
    if k == 3:
        return conv_layer(pattern_pruned(rng, o, c), padding=1)
    return conv_layer(rng.standard_normal((o, c, 1, 1)).astype(np.float32))


def test_space_sizes() -> None:
    # pattern kernel knobs + taps kernel knobs + pblock kernel knobs (stride 1)
    assert len(conv_space(_layer(), "c", vector=8)) == \
        4 * 3 * 2 * 2 + 3 * 3 * 3 * 2 + 5 * 2 * 2 * 2 * 2
    space = conv_space(_layer(), "c", vector=8)
    assert {s.kernel for s in space} == {"pattern", "taps", "pblock"} and \
        len(list(space)) == len(space)
    assert space[-1] == list(space)[-1]
    # stride 2 on 8 channels reads stride phases: every kernel applies; a 3-channel stride-2
    # conv reads the plain buffer (lane gathers): the pattern and direct kernels only
    rng = np.random.default_rng(0)
    strided = conv_layer(pattern_pruned(rng, 8, 8), padding=1, stride=2)
    assert {s.kernel for s in conv_space(strided, "c", vector=8)} == {"pattern", "taps", "pblock"}
    stem = conv_layer(pattern_pruned(rng, 8, 3), padding=1, stride=2)
    assert {s.kernel for s in conv_space(stem, "c", vector=8)} == {"pattern", "direct"}
    # 1x1: the GEMM kernel's register tiles x unroll (1, 2) x tiles per job (4, 16) x parallel
    assert len(conv_space(_layer(k=1), "c", vector=16)) == 8 * 2 * 2 * 2
    assert len(conv_space(_layer(k=1), "c", vector=8)) == 6 * 2 * 2 * 2
    assert {s.kernel for s in conv_space(_layer(k=1), "c", vector=8)} == {"gemm"}
    assert len(conv_space(_layer(), "numba")) == 8


def test_narrow_vectors_where_the_output_fills_them_better() -> None:
    rng = np.random.default_rng(0)
    dw = conv_layer(rng.standard_normal((8, 1, 3, 3)).astype(np.float32), padding=1, groups=8)
    # a 3x3 conv's output rows: 7 of 16 lanes vs 7 of 8; 14 of 16 either way
    assert narrow_vector(_layer(), (8, 7, 7), 16) == 8
    assert narrow_vector(_layer(), (8, 14, 14), 16) is None
    # a 1x1 GEMM runs over whole planes: 49 pixels fill 4 x 16 lanes (77%) or 7 x 8 (88%)
    assert narrow_vector(_layer(k=1), (8, 7, 7), 16) == 8
    assert narrow_vector(_layer(k=1), (8, 28, 28), 16) is None
    assert narrow_vector(_layer(), (8, 7, 7), 8) is None
    assert narrow_vector(dw, (8, 7, 7), 16) is None
    wide = conv_space(_layer(), "c", vector=16, in_shape=(8, 14, 14))
    assert len(wide) == len(conv_space(_layer(), "c", vector=16))
    narrow = conv_space(_layer(), "c", vector=16, in_shape=(8, 7, 7))
    eight = {s.with_(vector=0) for s in narrow if s.vector == 8}
    assert 2 * len(eight) == len(narrow) and eight == {s for s in narrow if s.vector == 0}


def test_small_planes_also_try_one_row_tile_per_plane() -> None:
    def heights(shape: tuple[int, int, int], kernel: str) -> set[int]:
        return {s.tile_h for s in conv_space(_layer(), "c", vector=16, in_shape=shape)
                if s.kernel == kernel}
    # 7 output rows: a 7-row tile for the pattern and taps kernels; 14 rows: none
    assert 7 in heights((8, 7, 7), "pattern") and 7 in heights((8, 7, 7), "taps")
    assert heights((8, 14, 14), "taps") == {2, 3, 4}
    # 4 rows are already a candidate, nothing added twice
    assert heights((8, 4, 4), "taps") == {2, 3, 4}


def test_signature_separates_shapes_not_masks() -> None:
    a, b = _layer(), conv_layer(pattern_pruned(np.random.default_rng(5), 8, 8), padding=1)
    assert layer_signature(a, (8, 12, 12)) != layer_signature(a, (8, 14, 14))
    assert layer_signature(a, (8, 12, 12)).split(":P")[0] == \
        layer_signature(b, (8, 12, 12)).split(":P")[0]


@pytest.mark.needs_cc
def test_cache_evictor_dirties_every_line_of_twice_the_last_level_cache() -> None:
    evict = CacheEvictor()
    assert evict.buf.nbytes == 2 * last_level_cache_bytes()
    evict(2)
    evict(1)
    lines = evict.buf[::16]
    assert np.all(lines == 2.0) and np.all(evict.buf[1::16] == 0.0)


@pytest.mark.needs_cc
def test_tuner_evicts_caches_before_every_timed_call(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(tune, "_evictor", lambda: calls.append)
    tune_layer(_layer(), (8, 12, 12), "c", trials=2, log=TuningLog(tmp_path / "t.jsonl"),
               threads=1, repeats=3)
    # two candidates (the pattern and taps defaults), three timed calls each, one thread
    assert calls == [1] * 6


def test_candidates_are_timed_in_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    # each round calls every candidate once, so a slow spell of the machine hits them alike
    order: list[str] = []

    class Fake:
        emitter = "numba"

        def __init__(self, name: str) -> None:
            self.name = name

        def __call__(self, x: np.ndarray) -> None:
            order.append(self.name)
    ts = tune._time_kernels([Fake("a"), Fake("b"), Fake("c")], (1, 2, 2), repeats=3)
    assert len(ts) == 3 and all(t >= 0 for t in ts)
    assert order == ["a", "b", "c"] * 4   # one warm-up call each, then 3 rounds


def test_replay_takes_the_pick_over_a_faster_record_of_another_round(tmp_path: Path) -> None:
    from workbench.codegen.schedule import Schedule
    log = TuningLog(tmp_path / "t.jsonl")
    sig, tgt = "conv2d:x", "c:x86_64:v16:cpu"
    rec = {"signature": sig, "target": tgt, "threads": 2, "version": LOG_VERSION}
    log.append({**rec, "schedule": Schedule(tile_h=2).to_dict(), "ms": 1.0})
    log.append({**rec, "schedule": Schedule(tile_h=3).to_dict(), "ms": 1.2, "pick": True})
    assert log.best(sig, tgt, 2) == Schedule(tile_h=3)
    log.append({**rec, "schedule": Schedule(tile_h=6).to_dict(), "ms": 1.5, "pick": True})
    assert log.best(sig, tgt, 2) == Schedule(tile_h=6)   # the last pick (a retune)
    plain = TuningLog(tmp_path / "old.jsonl")   # records without picks: the fastest
    plain.append({**rec, "schedule": Schedule(tile_h=2).to_dict(), "ms": 1.0})
    plain.append({**rec, "schedule": Schedule(tile_h=3).to_dict(), "ms": 1.2})
    assert plain.best(sig, tgt, 2) == Schedule(tile_h=2)


@pytest.mark.needs_cc
def test_tune_logs_then_replays(tmp_path: Path) -> None:
    log = TuningLog(tmp_path / "tune.jsonl")
    layer = _layer()
    best = tune_layer(layer, (8, 12, 12), "c", trials=3, log=log, threads=1, repeats=2)
    recs = log.records()
    assert len(recs) == 3 and all(r["threads"] == 1 and r["ms"] > 0 for r in recs)
    assert best.to_dict() == min(recs, key=lambda r: r["ms"])["schedule"]
    assert all(r["version"] == LOG_VERSION for r in recs)
    # replay: same answer, nothing measured
    again = tune_layer(layer, (8, 12, 12), "c", trials=3, log=log, threads=1)
    assert again == best and len(log.records()) == 3
    # a torn last line (interrupted run) is skipped
    with open(log.path, "a") as f:
        f.write('{"signature": "x", "ms"')
    assert len(log.records()) == 3


@pytest.mark.needs_cc
def test_pointwise_layer_also_times_its_best_reading_in_place(tmp_path: Path) -> None:
    # 8x8 planes: every channel starts on a whole vector, so the best GEMM schedule is timed
    # again with pack=0; 7x7 planes cannot be read in place, so nothing more is timed
    layer = _layer(k=1)
    for hw, more in ((8, True), (7, False)):
        log = TuningLog(tmp_path / f"p{hw}.jsonl")
        best = tune_layer(layer, (8, hw, hw), "c", trials=2, log=log, threads=1, repeats=1)
        recs = log.records()
        packed = [r for r in recs if r["schedule"]["pack"] == 1]
        in_place = [r for r in recs if r["schedule"]["pack"] == 0]
        assert all(r["schedule"]["kernel"] == "gemm" for r in recs)
        (pick,) = [r for r in recs if r.get("pick")]
        assert best.to_dict() == pick["schedule"]
        if more:
            # round 1: the candidates; round 2: the fastest and its twin, the faster picked
            first = min(packed, key=lambda r: r["ms"])["schedule"]
            assert [r["schedule"] for r in in_place] == [{**first, "pack": 0}]
            pair = recs[-2:]
            assert [r["schedule"] for r in pair] == [first, {**first, "pack": 0}]
            assert pick is min(pair, key=lambda r: r["ms"])
        else:
            assert not in_place and pick is min(recs, key=lambda r: r["ms"])
        assert tune_layer(layer, (8, hw, hw), "c", trials=2, log=log, threads=1) == best


@pytest.mark.needs_cc
def test_tune_network_sets_schedules_once_per_signature(tmp_path: Path) -> None:
    from workbench.codegen.lr import LR
    l1, l2 = _layer(), _layer()
    l2.name, l2.inputs = "conv2", ["conv"]
    lr = LR({"input": [8, 10, 10]}, [l1, l2], ["conv2"])
    tuned = tune_network(lr, "c", trials=2, log=TuningLog(tmp_path / "t.jsonl"), threads=1)
    assert all(l.schedule is not None for l in tuned.layers)
    assert len(TuningLog(tmp_path / "t.jsonl").records()) == 2
    assert json.dumps(tuned.layers[0].schedule)


def test_old_log_version_is_a_clear_error(tmp_path: Path) -> None:
    layer = _layer()
    sig = layer_signature(layer, (8, 12, 12))
    log = TuningLog(tmp_path / "old.jsonl")
    # a version-1 record: no "version" field, chosen before the taps kernel existed
    log.append({"signature": sig, "target": "c:x86_64:v8", "threads": 1, "ms": 1.0,
                "schedule": {"tile_h": 2}})
    with pytest.raises(TuningLogError, match="version"):
        log.best(sig, "c:x86_64:v8", 1)
    log.append({"signature": sig, "target": "c:x86_64:v8", "threads": 1, "ms": 2.0,
                "schedule": {"tile_h": 3, "kernel": "taps"}, "version": LOG_VERSION})
    assert log.best(sig, "c:x86_64:v8", 1).kernel == "taps"


def test_depthwise_and_stem_spaces() -> None:
    from workbench.codegen.schedule import depthwise_space, direct_space
    rng = np.random.default_rng(1)
    dw = conv_layer(rng.standard_normal((16, 1, 3, 3)).astype(np.float32), padding=1, groups=16)
    space = conv_space(dw, "c", vector=8)
    assert {s.kernel for s in space} == {"depthwise"} and len(space) == len(depthwise_space(8))
    stem = conv_layer(rng.standard_normal((64, 3, 7, 7)).astype(np.float32), padding=3, stride=2)
    kinds = [s.kernel for s in conv_space(stem, "c", vector=8)]
    assert set(kinds) == {"pattern", "direct"} and kinds.count("direct") == len(direct_space(8))
    # more than 4 input channels: no direct candidates
    assert "direct" not in {s.kernel for s in conv_space(_layer(), "c", vector=8)}


@pytest.mark.needs_cc
def test_tune_depthwise_layer_starts_from_its_default(tmp_path: Path) -> None:
    from workbench.codegen.schedule import depthwise_default_schedule
    rng = np.random.default_rng(2)
    dw = conv_layer(rng.standard_normal((12, 1, 3, 3)).astype(np.float32), padding=1, groups=12)
    log = TuningLog(tmp_path / "dw.jsonl")
    best = tune_layer(dw, (12, 14, 14), "c", trials=3, log=log, threads=1, repeats=2)
    recs = log.records()
    assert best.kernel == "depthwise" and all(r["schedule"]["kernel"] == "depthwise" for r in recs)
    from workbench.codegen.host.build import host_vector_width
    assert recs[0]["schedule"] == depthwise_default_schedule(host_vector_width()).to_dict()


@pytest.mark.needs_cc
def test_narrow_layer_logged_without_8_float_candidates_is_tuned_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.codegen.host.tune import target_id
    from workbench.codegen.schedule import Schedule
    monkeypatch.setenv("WORKBENCH_VECTOR", "16")
    log = TuningLog(tmp_path / "tune.jsonl")
    layer, shape = _layer(), (8, 7, 7)
    sig = layer_signature(layer, shape)
    # as a log written before the 8-float candidates: one 16-float record
    log.append({"signature": sig, "target": target_id("c"), "threads": 1, "ms": 1e-6,
                "schedule": Schedule(kernel="taps").to_dict(), "version": LOG_VERSION})
    tune_layer(layer, shape, "c", trials=2, log=log, threads=1, repeats=1)
    recs = log.records()
    assert len(recs) > 1 and any(r["schedule"]["vector"] == 8 for r in recs)
    # now complete: replayed, nothing measured (the new round's pick, not the planted
    # record of another round, however fast)
    best = tune_layer(layer, shape, "c", trials=2, log=log, threads=1, repeats=1)
    (pick,) = [r for r in recs if r.get("pick")]
    assert len(log.records()) == len(recs) and best.to_dict() == pick["schedule"]


@pytest.mark.needs_cc
def test_records_of_another_cpu_are_not_replayed(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.codegen.host.tune as tune
    from workbench.codegen.host.build import cpu_id
    from workbench.codegen.schedule import Schedule
    assert tune.target_id("c").endswith(":" + cpu_id()) and cpu_id()
    log = TuningLog(tmp_path / "tune.jsonl")
    layer, shape = _layer(), (8, 12, 12)
    sig = layer_signature(layer, shape)
    # the same ISA and width, measured on another CPU generation: derived from this one's id so
    # that it differs from it on whatever machine runs the test
    other = cpu_id() + "-other"
    assert other != cpu_id()
    monkeypatch.setattr(tune, "cpu_id", lambda: other)
    log.append({"signature": sig, "target": tune.target_id("c"), "threads": 1, "ms": 1e-6,
                "schedule": Schedule(tile_h=3).to_dict(), "version": LOG_VERSION})
    monkeypatch.undo()
    assert log.best(sig, tune.target_id("c"), 1) is None
    tune_layer(layer, shape, "c", trials=2, log=log, threads=1, repeats=1)
    assert len(log.records()) > 1


def test_column_pruned_layers_add_the_column_space() -> None:
    from workbench.codegen.schedule import column_space
    from ..helpers import column_pruned
    rng = np.random.default_rng(3)
    col = conv_layer(column_pruned(rng, 8, 8, 3, 0.3), padding=1)
    kinds = [s.kernel for s in conv_space(col, "c", vector=8)]
    # register tiles x loop orders x prefetch
    assert kinds.count("column") == len(column_space(8)) == 5 * 2 * 2
    assert len(kinds) == len(conv_space(_layer(), "c", vector=8)) + len(column_space(8))
    # dense layers and pattern-pruned ones keep their space (and their logged bests)
    dense = conv_layer(rng.standard_normal((8, 8, 3, 3)).astype(np.float32), padding=1)
    assert "column" not in {s.kernel for s in conv_space(dense, "c", vector=8)}
    assert "column" not in {s.kernel for s in conv_space(_layer(), "c", vector=8)}


@pytest.mark.needs_cc
def test_column_layer_logged_without_column_candidates_is_tuned_again(tmp_path: Path) -> None:
    from workbench.codegen.host.tune import target_id
    from workbench.codegen.schedule import Schedule
    from ..helpers import column_pruned
    layer = conv_layer(column_pruned(np.random.default_rng(4), 6, 5, 3, 0.3), padding=1)
    shape = (5, 9, 9)
    log = TuningLog(tmp_path / "tune.jsonl")
    log.append({"signature": layer_signature(layer, shape), "target": target_id("c"),
                "threads": 1, "ms": 1e-6, "schedule": Schedule().to_dict(),
                "version": LOG_VERSION})
    best = tune_layer(layer, shape, "c", trials=2, log=log, threads=1, repeats=1)
    recs = log.records()
    assert len(recs) > 1 and any(r["schedule"]["kernel"] == "column" for r in recs[1:])
    assert tune_layer(layer, shape, "c", trials=2, log=log, threads=1, repeats=1) == best
    assert len(log.records()) == len(recs)
