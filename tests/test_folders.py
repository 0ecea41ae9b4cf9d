import json
import shutil

import numpy as np
import pytest
from PIL import Image

from pscl.data import DataError, check_dataset, load_dataset


def test_synthetic_folder_is_valid(synth_data):
    assert check_dataset(synth_data) == []
    ds = load_dataset(synth_data)
    assert ds.classes == ["matrix", "lamellar", "precipitate"]
    assert {len(ds.splits[s]) for s in ("val", "test")} == {2}


def test_check_reports_every_problem_at_once(synth_data, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(synth_data, broken)
    meta = json.loads((broken / "dataset.json").read_text())
    train = meta["splits"]["train"]
    # 1 unreadable image, 2 missing mask, 3 mask of another size, 4 class out of range,
    # 5 stem not on disk, 6 duplicate stem, 7 empty split, 8 unreadable unlabelled image
    (broken / "images" / f"{train[0]}.png").write_bytes(b"garbage")
    (broken / "masks" / f"{train[1]}.png").unlink()
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(broken / "masks" / f"{train[2]}.png")
    bad = np.array(Image.open(broken / "masks" / f"{train[3]}.png"))
    bad[0, 0] = 7
    Image.fromarray(bad).save(broken / "masks" / f"{train[3]}.png")
    meta["splits"]["train"].append("ghost")
    meta["splits"]["val"].append(train[4])
    meta["splits"]["test"] = []
    (broken / "dataset.json").write_text(json.dumps(meta))
    (broken / "unlabeled" / "unlab000.png").write_bytes(b"")
    problems = "\n".join(check_dataset(broken))
    assert f"{train[0]}.png: unreadable" in problems
    assert f"{train[1]}.*: mask is missing" in problems
    assert f"{train[2]}.png: mask size (10, 12) differs" in problems
    assert f"{train[3]}.png: class index 7 out of range" in problems
    assert "ghost.*: image listed in dataset.json is missing" in problems
    assert f"stem '{train[4]}' listed twice" in problems
    assert "split 'test'" not in problems  # val and test are optional (a user's folder often has neither)
    assert "unlab000.png: unreadable" in problems
    assert len(check_dataset(broken)) == 7


def test_ignore_label_is_not_out_of_range(synth_data, tmp_path):
    folder = tmp_path / "ign"
    shutil.copytree(synth_data, folder)
    stem = load_dataset(folder).splits["train"][0]
    m = np.array(Image.open(folder / "masks" / f"{stem}.png"))
    m[:5] = 255
    Image.fromarray(m).save(folder / "masks" / f"{stem}.png")
    assert check_dataset(folder) == []


def test_plain_folder_of_images(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((8, 8), i * 40, np.uint8)).save(tmp_path / f"im{i}.png")
    ds = load_dataset(tmp_path)
    assert ds.classes is None and ds.splits["all"] == ["im0", "im1", "im2"]
    assert len(ds.pretraining_paths()) == 3
    assert check_dataset(tmp_path) == []
    with pytest.raises(DataError, match="no classes"):
        ds.num_classes


def test_shots_are_deterministic_distinct_and_wrap(synth_data):
    ds = load_dataset(synth_data)
    n = len(ds.splits["train"])
    first = [ds.shots(1, r)[0] for r in range(n)]
    assert sorted(first) == sorted(ds.splits["train"])  # every image once over n rounds
    assert [load_dataset(synth_data).shots(1, r)[0] for r in range(n)] == first
    assert ds.shots(2, 0) == [first[0], first[-(-n // 2)]] and ds.shots(1, n) == first[:1]
    assert all(ds.shots(1, r)[0] in ds.shots(3, r) for r in range(n))  # k images hold the round's single one
    assert ds.shots(100, 0) == sorted(ds.splits["train"])


@pytest.mark.parametrize("name,classes,splits", [("metaldam", 5, (24, 10, 8)), ("uhcs", 4, (16, 4, 4))])
def test_public_datasets_are_valid(name, classes, splits):
    from conftest import shared_dataset
    ds = load_dataset(shared_dataset(name))  # skips with a reason when ../shared/data is absent
    assert ds.num_classes == classes
    assert tuple(len(ds.splits[s]) for s in ("train", "val", "test")) == splits
    assert check_dataset(ds.root) == []
