"""Every named budget builds valid configs for every stage and method."""
import pytest

from pscl import api
from pscl.methods import METHODS
from pscl.profiles import PROFILES, method_options


@pytest.mark.parametrize("profile", list(PROFILES))
def test_profile_builds_valid_configs(profile):
    finetune = api.finetune_config(profile)
    assert finetune.steps > 0 and finetune.val_every <= finetune.steps
    for method in METHODS:
        pretrain = api.pretrain_config(profile, method=method)
        assert pretrain.steps > 0
        assert method_options(profile, method).items() <= pretrain.options.items()


def test_cpu_profile_is_quick_sizes_at_longer_budgets():
    quick, cpu = (api.finetune_config(name) for name in ("quick", "cpu"))
    assert (cpu.widths, cpu.crop, cpu.batch_size) == (quick.widths, quick.crop, quick.batch_size)
    assert cpu.steps > quick.steps and cpu.lr_schedule == "poly"
    assert api.pretrain_config("cpu", method="pscl-simclr").steps > api.pretrain_config("quick", method="pscl-simclr").steps
