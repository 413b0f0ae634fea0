import pytest
import torch

from trainables.models.heads import DVME


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


@pytest.mark.parametrize("attention,form,interacts", [(True, "token", True), (True, "listing", True),
                                                        (False, "token", False)])
def test_attention_lets_backbones_interact(attention, form, interacts):
    # With attention, one backbone's input changes the other's token; without it, it cannot.
    torch.manual_seed(0)
    head = DVME([4, 4], n_classes=2, proj_dim=8, num_heads=1, attention=attention, attention_form=form,
                no_attention_head="mlp").eval()
    a, b = torch.randn(1, 4), torch.randn(1, 4)
    first, changed = head.mixed_tokens([a, b])[:, 0], head.mixed_tokens([a, b + 1])[:, 0]
    assert (not torch.allclose(first, changed)) == interacts
    # The fused embedding the classifier reads is made of these tokens.
    torch.testing.assert_close(head.embed([a, b]),
                               head.proj_head(head.norm(head.mixed_tokens([a, b]).reshape(1, -1))).relu())


def test_the_papers_ablation_connects_the_concatenated_projections_to_the_classifier():
    torch.manual_seed(0)
    head = DVME([6, 4], n_classes=3, proj_dim=8, attention=False).eval()  # no_attention_head="linear"
    a, b = torch.randn(5, 6), torch.randn(5, 4)
    meta = torch.cat([head.projections[0](a), head.projections[1](b)], dim=1)
    torch.testing.assert_close(head.embed([a, b]), meta)
    torch.testing.assert_close(head([a, b]), head.classifier(meta))
    assert head.norm is None and head.proj_head is None


@pytest.mark.parametrize("form", ["token", "listing"])
def test_qkv_bias_is_timms_default_off_unless_asked(form):
    def qkv(head):
        return head.attn.qkv if form == "listing" else head.attn.attn.qkv

    assert qkv(DVME([4, 4], 2, proj_dim=8, attention_form=form)).bias is None
    assert qkv(DVME([4, 4], 2, proj_dim=8, attention_form=form, qkv_bias=True)).bias is not None


def test_unknown_attention_form_is_refused():
    with pytest.raises(ValueError, match="unknown attention_form 'graph'"):
        DVME([4, 4], 2, attention_form="graph")


@pytest.mark.parametrize("form,proj", [("token", 16), ("listing", 4)])
def test_attention_between_backbones_is_a_row_stochastic_matrix(form, proj):
    torch.manual_seed(0)
    head = DVME([6, 5, 4], n_classes=2, proj_dim=proj, num_heads=2, attention_form=form).eval()
    feats = [torch.randn(7, d) for d in (6, 5, 4)]
    weights = head.backbone_attention(feats)
    assert weights.shape == (7, 3, 3)
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(7, 3))
    assert DVME([6, 5], 2, proj_dim=8, attention=False).backbone_attention(feats[:2]) is None


def test_token_attention_matches_what_the_block_computes():
    from timm.models.vision_transformer import Attention

    from trainables.models.heads import attention_weights

    torch.manual_seed(1)
    attn = Attention(dim=8, num_heads=2, qkv_bias=True).eval()
    x = torch.randn(3, 4, 8)
    weights = attention_weights(attn, x)
    # Rebuild the module's output from the weights: the same as its own forward.
    qkv = attn.qkv(x).reshape(3, 4, 3, 2, 4).permute(2, 0, 3, 1, 4)
    per_head = ((qkv[0] * attn.scale) @ qkv[1].transpose(-2, -1)).softmax(-1)
    out = attn.proj((per_head @ qkv[2]).transpose(1, 2).reshape(3, 4, 8))
    torch.testing.assert_close(out, attn(x))
    torch.testing.assert_close(weights, per_head.mean(dim=1))


def test_listing_form_runs_fused_attention_equal_to_the_written_out_one_and_analyses_in_chunks(monkeypatch):
    import trainables.models.heads

    torch.manual_seed(2)
    head = DVME([6, 5, 4], n_classes=2, proj_dim=8, attention_form="listing").eval()
    assert head.attn.fused_attn
    feats = [torch.randn(5, d) for d in (6, 5, 4)]
    fused = head(feats)
    head.attn.fused_attn = False
    torch.testing.assert_close(head(feats), fused)
    whole = head.backbone_attention(feats)
    # 24 tokens: 576 weights an image; a budget of 1,200 analyses two images at a time.
    monkeypatch.setattr(trainables.models.heads, "ANALYSIS_FLOATS", 1200)
    torch.testing.assert_close(head.backbone_attention(feats), whole)
