"""qarch sweep: the sweep file's checks, the plan, and a real sweep on a 2-worker Dask
LocalCluster that survives a killed worker and resumes without recomputing."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from qarch.cli import main
from qarch.configs import PRESETS
from qarch.sweep import parse_sweep, plan, run_sweep, write_results

REPORTS = Path(__file__).resolve().parent.parent / "synth" / "reports"
PE6 = {
    "name": "pe6",
    "measure": ["synth"],
    "axes": {"acc_bits": [10, 12, 14, 16, 20, 24]},
    "hardware": {"preset": "int4x8-pe-p16", "acc_bits": "{acc_bits}"},
}


def _example(**changes):
    d = {
        "name": "ex",
        "measure": ["synth", "perf", "eval"],
        "axes": {"size": [4, 8], "pi": [16, 20]},
        "hardware": {"preset": "int4x8-array8x8-p16-stream", "rows": "{size}", "cols": "{size}",
                     "acc_bits": "{pi}"},
        "scheme": {"name": "axe-gptq", "acc_bits": "{pi}", "tile": 64},
    }  # fmt: skip
    d.update(changes)
    return d


def test_plan_shares_eval_across_hardware_points():
    points, tasks = plan(parse_sweep(_example()))
    assert len(points) == 4
    kinds = [t.kind for t in tasks.values()]
    # 4 syntheses, 4 perf runs, 2 evals (one per distinct scheme config: pi)
    assert kinds.count("synth") == 4 and kinds.count("perf") == 4 and kinds.count("eval") == 2
    evals = {p["keys"]["eval"] for p in points if p["point"]["pi"] == 16}
    assert len(evals) == 1
    # keys are the content: the same sweep plans the same keys, another value another key
    again = plan(parse_sweep(_example()))[1]
    assert set(again) == set(tasks)
    other = plan(parse_sweep(_example(axes={"size": [4, 8], "pi": [16, 18]})))[1]
    assert len(set(other) & set(tasks)) == 2 + 2 + 1  # the pi = 16 tasks
    for t in tasks.values():
        if t.kind == "perf":
            assert t.needs in tasks and tasks[t.needs].spec["config"] == t.spec["config"]


@pytest.mark.parametrize(
    "changes, msg",
    [
        ({"extra": 1}, "unknown key"),
        ({"name": "a b"}, "name must be"),
        ({"measure": ["area"]}, "measure must be"),
        ({"measure": []}, "measure must be"),
        ({"axes": {}}, "at least one axis"),
        ({"axes": {"size": [], "pi": [16]}}, "non-empty list"),
        ({"axes": {"size": [4, 4], "pi": [16]}}, "repeats a value"),
        ({"axes": {"size": [4], "pi": [16], "unused": [1]}}, "used by no table"),
        ({"hardware": {"preset": "int4x8-array8x8-p16-stream", "rows": "{nope}"}}, "names no axis"),
        ({"hardware": {"rows": "{size}", "cols": "{pi}"}}, "need [hardware] preset"),
        ({"scheme": {"acc_bits": "{pi}", "tile": "{size}"}}, "need [scheme] name"),
    ],
)
def test_sweep_file_errors(changes, msg):
    with pytest.raises(ValueError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        parse_sweep(_example(**changes))


@pytest.mark.parametrize(
    "changes, msg",
    [
        ({"hardware": {"preset": "nope", "rows": "{size}", "acc_bits": "{pi}"}}, "not a preset"),
        ({"hardware": {"preset": "int4x8-array8x8-p16-stream", "rows": "{size}",
                       "acc_bits": "{pi}", "depth": 3}}, "not a field"),  # fmt: skip
        ({"hardware": {"preset": "int4x8-array8x8-p16-stream", "rows": "{size}",
                       "acc_bits": "{pi}", "acc_depth": 3}}, "power of two"),  # fmt: skip
        ({"scheme": {"name": "axe-gptq", "acc_bits": "{pi}", "tile": "{size}", "x": 1}},
         "not an option of scheme axe-gptq"),  # fmt: skip
        ({"scheme": {"name": "nope", "acc_bits": "{pi}", "tile": "{size}"}}, "scheme must be"),
    ],
)
def test_plan_validates_every_config_before_work(changes, msg):
    with pytest.raises(ValueError, match=msg):
        plan(parse_sweep(_example(**changes)))


def test_cli_plan_and_errors(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text(
        'name = "pe2"\nmeasure = ["synth"]\n[axes]\nacc_bits = [10, 12]\n'
        '[hardware]\npreset = "int4x8-pe-p16"\nacc_bits = "{acc_bits}"\n'
    )
    assert main(["sweep", str(f), "--plan", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "2 points, 2 distinct tasks, 0 stored" in out and "acc_bits=12" in out
    assert main(["sweep", str(tmp_path / "none.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.toml").write_text("name = [")
    assert main(["sweep", str(tmp_path / "bad.toml")]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["sweep", str(f), "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def test_sweep_survives_a_killed_worker_and_resumes(tmp_path, monkeypatch):
    """6 PE syntheses on a 2-worker LocalCluster; one worker is SIGKILLed while it runs a task.
    Every point is present exactly once, with the figures of the serial synthesis flow (the
    committed reports of the same presets), and a re-run computes nothing."""
    from distributed import Client, LocalCluster

    sw = parse_sweep(PE6)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0")  # fmt: skip
    client = Client(cluster)
    store = tmp_path / "results"
    result: dict = {}

    def run():
        try:
            result["rows"] = run_sweep(sw, tmp_path, scheduler=cluster.scheduler_address,
                                       progress=False)  # fmt: skip
        except BaseException as e:  # reported below
            result["error"] = e

    th = threading.Thread(target=run)
    th.start()
    try:
        deadline = time.monotonic() + 300
        while not list(store.glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.2)
        busy = [w for w, tasks in client.processing().items() if tasks]
        assert busy, "no worker is running a task after the first result"
        pids = client.run(os.getpid, workers=busy[:1])
        os.kill(next(iter(pids.values())), signal.SIGKILL)
        th.join(timeout=600)
    finally:
        client.close()
        cluster.close()
    assert "error" not in result, result.get("error")
    rows = result["rows"]
    assert sorted(r["acc_bits"] for r in rows) == [10, 12, 14, 16, 20, 24]
    assert len(list(store.glob("*.json"))) == 6 and not list(store.glob("*.tmp"))
    for r in rows:
        cfg = PRESETS[f"int4x8-pe-p{r['acc_bits']}"]
        rep = json.loads((REPORTS / f"{cfg.slug}.generic.json").read_text())
        assert r["synth.design"] == cfg.slug
        assert r["synth.area_um2"] == rep["area_um2"]
        assert r["synth.fmax_mhz"] == rep["timing"]["fmax_mhz"]
        assert r["synth.pj_per_mac_real"] == rep["power"]["real"]["pj_per_mac"]

    # a re-run finds every result stored and starts no cluster
    import qarch.sweep as sweep_mod

    def no_dispatch(*a, **k):
        raise AssertionError("a complete sweep dispatched work")

    monkeypatch.setattr(sweep_mod, "_dispatch", no_dispatch)
    again = run_sweep(sw, tmp_path, progress=False)
    assert again == rows
    readme = write_results(sw, rows, tmp_path)
    text = readme.read_text()
    assert text.count("\n| 1") == 4 and "Pareto" not in text  # 10, 12, 14, 16 rows; plot file
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 6
