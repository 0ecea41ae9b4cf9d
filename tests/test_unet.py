import pytest
import torch

from pscl.nn import UNet


@pytest.mark.parametrize("size", [(64, 64), (37, 51), (8, 9), (1, 1)])
def test_any_input_size_gives_logits_of_that_size(size):
    net = UNet(3, (4, 8, 8, 16)).eval()
    out = net(torch.rand(2, 1, *size), return_features=True)
    assert out.logits.shape == (2, 3, *size)
    h, w = size
    assert out.bottleneck.shape == (2, 16, -(-h // 8), -(-w // 8))
    assert [d.shape[-2:] for d in out.decoder] == [(-(-h // s), -(-w // s)) for s in (4, 2, 1)]
    assert [d.shape[1] for d in out.decoder] == [8, 8, 4]


def test_default_widths_and_parameter_groups_partition_the_model():
    net = UNet(5)
    assert net.widths == (32, 64, 128, 256)
    groups = net.contracting_parameters() + net.expanding_parameters()
    assert len(groups) == len(list(net.parameters()))
    assert {id(p) for p in groups} == {id(p) for p in net.parameters()}


def test_bad_widths_raise():
    with pytest.raises(ValueError, match="widths"):
        UNet(2, (8, 16))


def test_reset_classifier_changes_class_count_only():
    net = UNet(2, (4, 8, 8, 16)).eval()
    enc = {k: v.clone() for k, v in net.encoder.state_dict().items()}
    net.reset_classifier(7)
    assert net(torch.rand(1, 1, 16, 16)).shape[1] == 7
    assert all(torch.equal(v, net.encoder.state_dict()[k]) for k, v in enc.items())


@pytest.mark.parametrize("size", [(37, 50), (64, 64)])
def test_features_are_the_classifier_input(size):
    torch.manual_seed(0)
    model = UNet(3, (4, 8, 8, 16)).eval()
    x = torch.rand(2, 1, *size)
    with torch.no_grad():
        feats = model.features(x)
        assert feats.shape == (2, 4, *size)
        assert torch.allclose(model.classifier(feats), model(x), atol=1e-6)


def test_decoder_layer_norm_normalises_every_pixel_of_every_decoder_map_and_round_trips(tmp_path):
    from pscl.checkpoints import load_model, save_model
    torch.manual_seed(0)
    net = UNet(3, (4, 8, 8, 16), norm="batch+ln").eval()
    plain = UNet(3, (4, 8, 8, 16)).eval()
    assert len(net.state_dict()) == len(plain.state_dict()) + 2 * 3  # weight and bias per decoder block
    out = net(torch.rand(2, 1, 24, 24), return_features=True)
    for d in out.decoder:  # fresh affine (1, 0): zero mean over the channels of each pixel
        torch.testing.assert_close(d.mean(1), torch.zeros_like(d.mean(1)), atol=1e-5, rtol=0)
    assert not all(torch.allclose(d.mean(1), torch.zeros_like(d.mean(1)), atol=1e-3)
                   for d in plain(torch.rand(2, 1, 24, 24), return_features=True).decoder)
    save_model(tmp_path, net, {"norm": "batch+ln"}, ["a", "b", "c"])
    loaded, _ = load_model(tmp_path)
    x = torch.rand(1, 1, 16, 16)
    torch.testing.assert_close(loaded(x), net(x))
    with pytest.raises(ValueError, match="norm"):
        UNet(3, (4, 8, 8, 16), norm="layer")


def test_bad_norm_is_refused_by_both_configs_before_any_run():
    from pscl.methods import PretrainConfig
    from pscl.train.finetune import FinetuneConfig
    for make in (PretrainConfig, FinetuneConfig):
        with pytest.raises(ValueError, match="norm must be one of"):
            make(norm="batch+layer")
        assert make(norm="group+ln").norm == "group+ln"
