"""The bench's method language: variants parse or fail clearly; folder names are portable."""
import pytest

from pscl.bench import parse_method


def test_method_variants_parse_and_fail_clearly():
    assert parse_method("pscl-simclr:a=0") == ("pscl-simclr", {"a": 0}, {}, {})
    assert parse_method("pscl-simclr:scales=2") == ("pscl-simclr", {"scales": [2]}, {}, {})
    assert parse_method("pscl-simclr:scales=0/2:sampling=random") == ("pscl-simclr", {"scales": [0, 2], "sampling": "random"}, {}, {})
    assert parse_method("pscl-simclr:annotated_in_batch=false") == ("pscl-simclr", {}, {"annotated_in_batch": False}, {})
    assert parse_method("simclr:ft.lr_contracting_init=0.001") == ("simclr", {}, {}, {"lr_contracting_init": 0.001})
    assert parse_method("scratch:ft.steps=800") == ("scratch", {}, {}, {"steps": 800})
    assert parse_method("scratch+semi") == ("scratch", {}, {}, {"semi": True})
    assert parse_method("pscl-simclr+semi:a=0") == ("pscl-simclr", {"a": 0}, {}, {"semi": True})
    with pytest.raises(ValueError, match="no semi-supervised"):
        parse_method("forest+semi")
    with pytest.raises(ValueError, match="not a fine-tuning setting"):
        parse_method("simclr:ft.speed=3")
    with pytest.raises(ValueError, match="unknown method"):
        parse_method("pscl-simclrr:a=0")
    with pytest.raises(ValueError, match="key=value"):
        parse_method("pscl-simclr:a")
    with pytest.raises(ValueError, match="only pretraining methods"):
        parse_method("scratch:a=0")


def test_view_variants_reach_the_pretraining_views():
    from pscl.methods import PretrainConfig, build_method

    spec = parse_method("simclr:views.jitter=0:views.crop_min=0.5:steps=800")
    assert spec == ("simclr", {}, {"views": {"jitter": 0, "crop_min": 0.5}, "steps": 800}, {})
    method = build_method(PretrainConfig(method="simclr", widths=(4, 8, 16, 32), crop=32, **spec[2]))
    assert (method.view_config.jitter, method.view_config.crop_min, method.view_config.flip_p) == (0, 0.5, 0.5)
    with pytest.raises(ValueError, match="not a view setting"):
        parse_method("simclr:views.blur=1")
    with pytest.raises(ValueError, match="only pretraining methods"):
        parse_method("scratch:views.jitter=0")


def test_method_folders_are_portable_and_distinct():
    from pscl.bench import folder_name

    specs = ["pscl-simclr:scales=0/2:sampling=random", "pscl-simclr:scales=0_2", "scratch+semi:ft.jitter=0.3",
             "pscl-simclr:a=0", "pscl-simclr", "simclr:ft.lr_contracting_init=0.001"]
    names = [folder_name(s) for s in specs]
    assert all(not set(n) & set('<>:"/\\|?*') for n in names), names  # what Windows or any system refuses
    assert folder_name("pscl-simclr:scales=0/2") == "pscl-simclr__scales=0_2"
    assert folder_name("scratch") == "scratch" and len(set(names[2:])) == len(names[2:])


def test_evaluation_variants_score_the_same_model_another_way():
    from pscl.bench.spec import Method, run_name

    assert Method.parse("scratch:eval.tta=true").evaluation == {"tta": True} and Method.parse("scratch").evaluation == {}
    assert run_name("pscl-simclr+semi:a=0:eval.tta=true") == "pscl-simclr+semi:a=0"
    assert Method.parse("pscl-simclr+semi:a=0:eval.tta=true:ft.jitter=0.3").pretraining_name == "pscl-simclr:a=0"
    assert parse_method("scratch:eval.tta=true") == ("scratch", {}, {}, {})
    with pytest.raises(ValueError, match="not an evaluation setting"):
        parse_method("forest:eval.tta=true")
    with pytest.raises(ValueError, match="not an evaluation setting"):
        parse_method("scratch:eval.speed=2")
