import pytest
import torch

from trainables.heads import DVME


@pytest.mark.parametrize("dims", [[96, 64], [2048, 2048, 1536]])
@pytest.mark.parametrize("attention,form", [(True, "token"), (True, "listing"), (False, "token")])
def test_dvme_fuses_any_number_of_backbones(dims, attention, form):
    proj = 16 if form == "listing" else 64
    head = DVME(dims, n_classes=5, proj_dim=proj, attention=attention, attention_form=form)
    feats = [torch.randn(3, d) for d in dims]
    out = head(feats)
    assert out.shape == (3, 5)
    out.sum().backward()
    # Every backbone's projection learns: gradients reach each of them.
    for p in head.projections:
        assert p.weight.grad is not None and p.weight.grad.abs().sum() > 0
    assert (head.attn is None) == (not attention)


def test_dict_input_matches_list_input():
    head = DVME([8, 4], n_classes=2, proj_dim=8).eval()
    a, b = torch.randn(2, 8), torch.randn(2, 4)
    torch.testing.assert_close(head({"x": a, "y": b}), head([a, b]))


def test_attention_lets_backbones_interact():
    # With attention, one backbone's input changes the other's token; without it, it cannot.
    torch.manual_seed(0)
    for attention, interacts in ((True, True), (False, False)):
        head = DVME([4, 4], n_classes=2, proj_dim=8, num_heads=1, attention=attention).eval()
        a, b = torch.randn(1, 4), torch.randn(1, 4)
        tokens = lambda x, y: torch.stack([p(v) for p, v in zip(head.projections, (x, y))], 1)
        if attention:
            first = head.attn(tokens(a, b))[:, 0]
            changed = head.attn(tokens(a, b + 1))[:, 0]
        else:
            first, changed = tokens(a, b)[:, 0], tokens(a, b + 1)[:, 0]
        assert (not torch.allclose(first, changed)) == interacts


def test_unknown_attention_form_is_refused():
    with pytest.raises(ValueError, match="unknown attention_form 'graph'"):
        DVME([4, 4], 2, attention_form="graph")
