"""trainables/cache/views.py: the steps the views' transforms share run once per image."""

import torch
from torchvision.transforms import v2

from trainables.cache.views import shared_prefix
from trainables.data.datasets import get_dataset_info
from trainables.data.transforms import build_transform
from trainables.models.backbones import get_backbone_info


def test_the_views_share_to_float_and_the_resize_and_go_on_to_the_same_values():
    info = get_backbone_info("random")
    evaluation = build_transform(get_dataset_info("pneumonia"), info, train=False)
    train = build_transform(get_dataset_info("pneumonia"), info, train=True)
    prefix, (rest_eval, rest_train) = shared_prefix([evaluation, train])
    assert [type(t) for t in prefix.transforms] == [v2.ToDtype, v2.Resize]
    assert type(rest_eval.transforms[0]) is v2.CenterCrop and type(rest_train.transforms[0]) is v2.RandomCrop
    image = torch.randint(0, 256, (1, 300, 260), dtype=torch.uint8)
    shared = prefix(image)
    assert torch.equal(rest_eval(shared), evaluation(image))
    torch.manual_seed(4)
    whole = train(image)
    torch.manual_seed(4)
    assert torch.equal(rest_train(shared), whole)  # the shared steps draw nothing: same crop and angle


def test_transforms_that_begin_otherwise_share_nothing():
    a = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Resize((64, 64))])
    b = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Resize((32, 32))])
    prefix, rests = shared_prefix([a, b])
    assert len(prefix.transforms) == 1 and [len(r.transforms) for r in rests] == [1, 1]
    prefix, rests = shared_prefix([a, lambda x: x])  # not a Compose: nothing to share
    assert isinstance(prefix, v2.Identity) and rests[0] is a
