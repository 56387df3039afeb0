"""`pspike report`: the files, the figures, the numbers behind them, and safe publishing."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

from pspike_neuro.cli import main
from pspike_neuro.report import FIGURES, NEAR_ZERO

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _report(ckpt, net, out, capsys, *extra):
    code = main(["report", str(ckpt.path), str(net), "--samples", "40", "--out", str(out), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def _image(path):
    import matplotlib.image

    return matplotlib.image.imread(str(path))


@pytest.fixture(scope="module")
def report_dir(trained_sdigits, tmp_path_factory):
    ckpt, net = trained_sdigits
    out = tmp_path_factory.mktemp("report")
    assert main(["report", str(ckpt.path), str(net), "--samples", "40", "--seed", "2", "--out", str(out)]) == 0
    return out


#: figure sizes in inches (height, width) for 2 layers and the 2 built-in cost models; saved at 110 dpi
FIGURE_INCHES = {"raster": (1.2 + 1.6 * 2, 9), "active_ratio": (3.6, 9), "probability_histogram": (3.4, 9),
                 "energy": (3.6, 4.6 * 2), "rates": (5, 5)}


def _expected_verdict(result):
    """The verdict the checks' values and limits imply, decided here from the numbers themselves."""
    failed = [name for name, c in result["checks"].items()
              if not (c["value"] <= c["limit"] if c["must_be"] == "<=" else c["value"] >= c["limit"])]
    return failed, "PASSED" if not failed else "FAILED: " + ", ".join(failed)


def test_report_writes_three_documents_with_five_figures(report_dir):
    report = json.loads((report_dir / "report.json").read_text())
    html = (report_dir / "report.html").read_text()
    md = (report_dir / "report.md").read_text()
    assert html.count("data:image/png;base64,") == len(FIGURES) == 5
    assert f'content="{report["run_id"]}"' in html and report["run_id"] in md
    for name in FIGURES:
        png = report_dir / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert f"](figures/{name}.png)" in md
        img = _image(png)
        assert img.shape[:2] == tuple(int(inches * 110) for inches in FIGURE_INCHES[name]), name
        assert (img[..., :3] < 0.9).mean() > 0.005   # something is drawn, not a blank canvas
    # the banner states the verdict the checks imply, in both documents
    failed, verdict = _expected_verdict(report["verification"])
    assert report["verification"]["passed"] == (not failed) and report["verification"]["failed_checks"] == failed
    css = "pass" if not failed else "fail"
    assert html.count('class="verdict ') == 1 and f'<p class="verdict {css}">Verification {verdict}</p>' in html
    assert f"**Verification: {'PASSED' if not failed else 'FAILED (' + ', '.join(failed) + ')'}**" in md
    assert not list(report_dir.glob(".report-staging-*"))


def test_report_numbers_are_what_verify_and_the_float_model_compute(trained_sdigits, report_dir, capsys):
    from pspike_neuro.data import load_task
    from pspike_neuro.export.hdf5 import read_netlist
    from pspike_neuro.numerics.rng import CounterNoise
    from pspike_neuro.sim.reference import simulate

    ckpt, net = trained_sdigits
    report = json.loads((report_dir / "report.json").read_text())
    code = main(["verify", str(ckpt.path), str(net), "--samples", "40", "--seed", "2", "--json"])
    verified = json.loads(capsys.readouterr().out)
    assert code == (0 if verified["passed"] else 1)
    assert report["verification"]["deployed"]["accuracy"] == verified["deployed"]["accuracy"]
    assert report["verification"]["layers"] == verified["layers"]
    assert report["verification"]["deployed"]["energy"] == verified["deployed"]["energy"]
    # the histogram's statistic, recomputed from the float model's probabilities
    noise = CounterNoise(seed=2, prob_bits=16)
    probe = {}
    with torch.no_grad():
        ckpt.model.double()(load_task("sdigits").test.x[:40].double(),
                            noise=lambda site, shape, dev, dt: noise(site, shape, dev, torch.float64), probe=probe)
    means = np.concatenate([probe[f"layer{l}.q"].clamp(0, 1).mean((0, 1)).numpy() for l in range(2)])
    assert report["probability"]["output"]["neurons"] == means.size == 64
    assert report["probability"]["output"]["fraction_near_zero"] == pytest.approx((means < NEAR_ZERO).mean())
    assert report["probability"]["output"]["median"] == pytest.approx(np.median(means))
    # the active-neuron curve's mean is the layer's spike rate
    for l in range(2):
        assert report["active_ratio"][str(l)]["deployed_mean"] == pytest.approx(
            verified["layers"][l]["output"]["deployed_rate"])
    # the raster is test sample 0 of the deployed run: its spikes, counted from a run of the simulator
    deployed = simulate(read_netlist(net), np.asarray(load_task("sdigits").test.x[:40]), seed=2)
    assert report["raster"]["sample"] == 0 and report["raster"]["steps"] == 64
    assert report["raster"]["spikes_per_layer"] == [int(s[0].sum()) for s in deployed.spikes_out]
    assert min(report["raster"]["spikes_per_layer"]) > 0


def test_second_report_replaces_the_first_without_mixing(trained_sdigits, tmp_path, capsys):
    ckpt, net = trained_sdigits
    code, first = _report(ckpt, net, tmp_path, capsys)
    assert code == 0 and first["verification"]["failed_checks"] == _expected_verdict(first["verification"])[0]
    # the second one fails a check no deployment meets (every spike equal): its banner is the page's now
    code, second = _report(ckpt, net, tmp_path, capsys, "--seed", "7", "--min-agreement", "1")
    failed, verdict = _expected_verdict(second["verification"])
    assert code == 0 and "min_agreement" in failed and second["verification"]["failed_checks"] == failed
    assert first["run_id"] != second["run_id"]
    for name in ("report.json", "report.md", "report.html"):
        text = (tmp_path / name).read_text()
        assert second["run_id"] in text and first["run_id"] not in text
    html = (tmp_path / "report.html").read_text()
    assert f'<p class="verdict fail">Verification {verdict}</p>' in html and "verdict pass" not in html
    assert f"**Verification: FAILED ({', '.join(failed)})**" in (tmp_path / "report.md").read_text()
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(f"{n}.png" for n in FIGURES)
    assert not list(tmp_path.glob(".report-staging-*"))


def test_interrupted_report_keeps_the_previous_one(trained_sdigits, tmp_path, capsys, monkeypatch):
    import pspike_neuro.report as report_module

    ckpt, net = trained_sdigits
    _report(ckpt, net, tmp_path, capsys)
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_module, "figure_rates", interrupted)
    assert main(["report", str(ckpt.path), str(net), "--samples", "40", "--out", str(tmp_path)]) == 130
    assert "interrupted" in capsys.readouterr().err
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before


def test_report_refuses_a_file_as_output_folder(trained_sdigits, tmp_path, capsys):
    ckpt, net = trained_sdigits
    target = tmp_path / "taken"
    target.write_text("mine")
    assert main(["report", str(ckpt.path), str(net), "--samples", "5", "--out", str(target)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert target.read_text() == "mine"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_report_renders_in_headless_chromium(report_dir, tmp_path):
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,4000",
                    f"--screenshot={shot}", (report_dir / "report.html").as_uri()],
                   check=True, timeout=120, capture_output=True)
    img = _image(shot)[..., :3]
    assert img.shape[:2] == (4000, 1100)
    html = (report_dir / "report.html").read_text()
    banner = (217, 242, 217) if re.search(r'class="verdict pass"', html) else (248, 215, 218)
    rgb = np.rint(img * 255).astype(int)
    assert (np.abs(rgb - banner).sum(-1) == 0).sum() > 2000     # the verdict banner is drawn
    # the figures below the tables (the energy table in both accountings ends near 1,300 px): many coloured
    # (non-grey) pixels below the first 1,200 px; a report without its figures has none there
    lower = rgb[1200:]
    coloured = (lower.max(-1) - lower.min(-1)) > 60
    assert coloured.mean() > 0.01
