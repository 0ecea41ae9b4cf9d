"""The fast path: precision chosen from the CPU's flags, channels_last, bf16 agreeing with fp32."""
import numpy as np
import pytest
import torch

from pscl.cpu import bf16_native, cpu_summary, fast_layout, resolve_precision, trains_channels_last
from pscl.losses import segmentation_loss
from pscl.nn import UNet


def test_auto_precision_follows_the_cpu_flags():
    assert resolve_precision("auto", "cpu", flags={"avx2", "amx_bf16", "amx_tile"}) == "bf16-mixed"
    assert resolve_precision("auto", "cpu", flags={"avx512f", "avx512_bf16"}, vendor="AuthenticAMD") == "bf16-mixed"
    # an Intel Xeon's AVX512-BF16 without AMX tiles was measured no faster than fp32
    assert resolve_precision("auto", "cpu", flags={"avx512f", "avx512_bf16"}, vendor="GenuineIntel") == "32-true"
    assert resolve_precision("auto", "cpu", flags={"avx2", "avx512f"}) == "32-true"  # bf16 emulated: slower
    assert resolve_precision("32-true", "cpu", flags={"amx_bf16"}) == "32-true"  # forcing fp32 is kept
    assert not bf16_native(set(), "AuthenticAMD") and bf16_native({"avx512_bf16"}, "AuthenticAMD")
    assert trains_channels_last("cpu", {"avx2", "avx512f"}) and not trains_channels_last("cpu", {"avx2", "fma"})
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("bf17", "cpu")
    summary = cpu_summary()
    assert summary["model"] and summary["bf16_native"] == bf16_native()


def test_channels_last_gives_the_same_logits_and_gradients():
    torch.manual_seed(0)
    net = UNet(3, (8, 16, 32, 64))
    fast = fast_layout(UNet(3, (8, 16, 32, 64)))
    fast.load_state_dict(net.state_dict())
    x, y = torch.rand(2, 1, 40, 40), torch.randint(0, 3, (2, 40, 40))
    a, b = net(x), fast(x)
    assert torch.allclose(a, b, atol=1e-4)
    segmentation_loss(a, y).backward()
    segmentation_loss(b, y).backward()
    # elementwise equality is too strict: a near-tie in a max-pool window or a pre-activation at 0
    # routes a gradient differently under any change of summation order (fp64 differs the same way)
    ga = torch.cat([p.grad.flatten() for p in net.parameters()])
    gb = torch.cat([p.grad.flatten() for p in fast.parameters()])
    assert torch.nn.functional.cosine_similarity(ga, gb, dim=0) > 0.999


def test_short_bf16_training_agrees_with_fp32():
    """20 Adam steps on one batch, bf16 autocast vs fp32, same seed: the logits before training
    agree to 0.05 in probability, and the loss curves to 10 % (bf16 keeps 8 mantissa bits: about
    0.4 % per rounding; measured on an AMD EPYC (AVX2, bf16 emulated): at most 3 % apart)."""
    x = torch.rand(4, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0.5).long() + (x[:, 0] > 0.8).long()
    curves, probs = {}, {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        net = UNet(3, (8, 16, 32, 64))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        losses = []
        for step in range(20):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = net(x)
            if step == 0:
                probs[bf16] = logits.detach().float().softmax(1)
            loss = segmentation_loss(logits.float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        curves[bf16] = np.array(losses)
    assert (probs[True] - probs[False]).abs().max() < 0.05
    assert curves[False][-1] < 0.8 * curves[False][0]  # it trains at all
    assert np.abs(curves[True] / curves[False] - 1).max() < 0.10, (curves[True], curves[False])


def test_prediction_precision_is_chosen_and_checked():
    from pscl.inference.predict import uses_bf16
    assert not uses_bf16("32-true") and uses_bf16("bf16-mixed")
    assert uses_bf16("auto") == bf16_native()
    with pytest.raises(ValueError, match="--precision for prediction"):
        uses_bf16("16-mixed")
