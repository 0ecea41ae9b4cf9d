"""The metallographer's report: numbers, the HTML page in a headless browser, refusals, scale bar and warnings."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pscl.errors import DataError
from pscl.inference.predict import predict

def _chromium() -> str | None:
    for name in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_report_numbers_and_html(tiny_run, synth_data, tmp_path):
    from pscl.metallography.report import make_report, read_groups

    pred = tmp_path / "pred"
    predict(tiny_run, synth_data / "images", pred, tile=64, overlap=16, um_per_px=0.2)
    stems = sorted(json.loads((pred / "predictions.json").read_text())["images"])
    groups_csv = tmp_path / "groups.csv"
    groups_csv.write_text("image,sample\n" + "".join(f"{s},{'A' if i % 2 else 'B'}\n" for i, s in enumerate(stems)))
    result = make_report(pred, groups=read_groups(groups_csv), truth=synth_data)
    assert set(result["samples"]) == {"A", "B"}
    a = result["samples"]["A"]
    per_field = np.array([result["images"][s]["fractions"] for s in a["images"]])
    assert a["fractions"]["fields"] == len(per_field)
    assert a["fractions"]["mean"]["matrix"] == pytest.approx(per_field[:, 0].mean())
    truth = np.array([result["images"][s]["true_fractions"] for s in a["images"]])
    assert np.allclose(truth.sum(1), 1.0)
    assert a["calibration"]["um_per_px"] == 0.2 and a["particles"]["precipitate"]["length_unit"] == "µm"
    out = Path(result["out"])
    for name in ("report.html", "report.json", "fractions.csv", "particles.csv"):
        assert (out / name).stat().st_size > 0
    html_text = (out / "report.html").read_text()
    assert "src='http" not in html_text and "href='http" not in html_text  # self-contained

    browser = _chromium()
    if browser is None:
        pytest.skip("no headless Chromium here (.ci/run installs chromium-headless-shell)")
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", (out / "report.html").as_uri()], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HOME": str(tmp_path)})
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    assert page.count("class=\"fractions\"") == 2 and page.count("class=\"particles\"") == 2
    assert "Sample A" in page and "ground truth" in page
    total = int(page.split('data-images-total="')[1].split('"')[0])
    decoded = int(page.split('data-images-decoded="')[1].split('"')[0])
    assert total >= 2 * len(stems) and decoded == total  # every micrograph, overlay and histogram decodes
    # the parts a metallographer hands on: raw micrograph beside each overlay with a scale bar, fractions in %,
    # date, version and the model's training, Dice against the truth, units, no density for the matrix
    assert page.count('class="raw"') == len(stems) and page.count('class="overlay"') == len(stems)
    assert page.count("<figcaption>synth000: micrograph; scale bar 5 µm") == 1  # 160 px x 0.2 µm: a 32 µm field, a 5 µm bar
    assert "area fraction (%)" in page and "by pscl 0.1.0" in page and "val Dice (fg) 0." in page
    assert "annotated image(s) of" in page and "Dice (fg) against the truth" in page
    assert "(continuous phase)" in page and "µm</td>" in page


def test_report_refuses_a_wrong_truth_or_groups_and_says_partial_truth(tiny_run, synth_data, tmp_path):
    from pscl.metallography.report import make_report

    pred = tmp_path / "pred"
    predict(tiny_run, synth_data / "images", pred, tile=64, overlap=16)
    with pytest.raises(DataError, match="--truth is not a folder"):
        make_report(pred, truth=tmp_path / "nowhere")
    with pytest.raises(DataError, match="--truth holds no mask named like the predicted images"):
        make_report(pred, truth=tmp_path)
    with pytest.raises(DataError, match="--groups names images that are not in .*: ghost"):
        make_report(pred, groups={"ghost": "A"})
    assert not (pred / "report").exists()
    partial = tmp_path / "truth"
    partial.mkdir()
    stems = sorted(json.loads((pred / "predictions.json").read_text())["images"])
    for stem in stems[:2]:
        shutil.copy(synth_data / "masks" / f"{stem}.png", partial)
    result = make_report(pred, truth=partial)
    sample = next(iter(result["samples"].values()))
    assert sample["truth_images"] == 2 and sample["fractions"]["fields"] == len(stems)
    on_truth = np.mean([result["images"][s]["fractions"] for s in stems[:2]], 0)
    assert list(sample["predicted_on_truth_images"].values()) == pytest.approx(on_truth)
    assert f"the 2 of {len(stems)} images with truth" in (Path(result["out"]) / "report.html").read_text()


def test_scale_bar_and_unsure_phase_warning(tiny_run, synth_data, tmp_path):
    from pscl.metallography.report import make_report
    from pscl.metallography.report_html import scale_bar_length

    assert [scale_bar_length(w) for w in (40.0, 100.0, 7.0, 0.9)] == [10.0, 20.0, 1.0, 0.2]
    pred = tmp_path / "pred"
    predict(tiny_run, synth_data / "images", pred, tile=64, overlap=16)
    meta = json.loads((pred / "predictions.json").read_text())
    for info in meta["images"].values():  # the probabilities "expect" matrix everywhere
        info["expected_fractions"] = [1.0, 0.0, 0.0]
    (pred / "predictions.json").write_text(json.dumps(meta))
    result = make_report(pred, continuous=["lamellar"])
    sample = next(iter(result["samples"].values()))
    assert "matrix" in sample["uncertain_classes"]
    assert sample["particles"]["lamellar"]["number_density"] is None
    assert sample["particles"]["matrix"]["number_density"] is not None  # --continuous replaces the default
    assert "disagree strongly" in (Path(result["out"]) / "report.html").read_text()
