"""The learned engine's answer honours the reader's clicks and its first answer starts from the model-free one
(issue 17): a negative click inside the answer takes away the part of it on the click's side and never the
positive one, a positive click the network left out brings back what it was less sure of around the click, and a
version trained with ``first_prior`` "region-growing" sees the region-growing proposal for the same prompts as the
previous-mask channel of its first answer (an older version sees an empty one, a three-channel one none).

No database: the numeric part of the engine on a synthetic study, with a network that records what it is given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from imaging.synthetic import generate_ct_study
from inference import engine as numeric
from inference.interactive import learned
from inference.interactive.base import Prompt, PromptRequest
from inference.interactive.modelfree import RegionGrowingEngine


def _dumbbell() -> tuple[np.ndarray, np.ndarray]:
    """Two bright balls (left and right) joined by a thin bright bridge on dark background: an answer that holds
    both, as a network that leaked along a vessel would give, and the image."""
    image = np.zeros((12, 24, 48), dtype=np.float32)
    z, y, x = np.ogrid[:12, :24, :48]
    left = (z - 6) ** 2 + (y - 12) ** 2 + (x - 10) ** 2 <= 16
    right = (z - 6) ** 2 + (y - 12) ** 2 + (x - 38) ** 2 <= 16
    bridge = (np.abs(z - 6) <= 0) & (np.abs(y - 12) <= 0) & (x >= 10) & (x <= 38)
    answer = left | right | bridge
    image[answer] = 1.0
    image[bridge] = 0.4  # a vessel: fainter than the nodules
    return answer, image


def test_a_negative_click_inside_the_answer_removes_its_side_and_keeps_the_positive_one() -> None:
    answer, image = _dumbbell()
    prob = np.where(answer, 0.9, 0.05).astype(np.float32)
    crop = (slice(0, 12), slice(0, 24), slice(0, 48))
    positive, negative = [(6, 12, 10)], [(6, 12, 38)]

    # Without the negative click the network's answer holds both balls.
    assert learned.mask_from_probability(prob, crop, image.shape, positive, image=image)[6, 12, 38]

    honoured = learned.mask_from_probability(prob, crop, image.shape, positive, negative=negative, image=image)
    z, y, x = np.ogrid[:12, :24, :48]
    left = (z - 6) ** 2 + (y - 12) ** 2 + (x - 10) ** 2 <= 16
    right = (z - 6) ** 2 + (y - 12) ** 2 + (x - 38) ** 2 <= 16
    assert not honoured[right].any()  # the clicked ball is gone, not only the clicked voxel
    assert honoured[left].all()  # the positive one is untouched
    assert honoured[6, 12, 10] and not honoured[6, 12, 38]


def test_a_positive_click_the_answer_left_out_brings_back_its_less_certain_part() -> None:
    _, image = _dumbbell()
    z, y, x = np.ogrid[:12, :24, :48]
    left = (z - 6) ** 2 + (y - 12) ** 2 + (x - 10) ** 2 <= 16
    right = (z - 6) ** 2 + (y - 12) ** 2 + (x - 38) ** 2 <= 16
    prob = np.full(image.shape, 0.02, dtype=np.float32)
    prob[left] = 0.9
    prob[right] = 0.35  # the network saw something there, below the threshold
    crop = (slice(0, 12), slice(0, 24), slice(0, 48))
    first = learned.mask_from_probability(prob, crop, image.shape, [(6, 12, 10)], image=image)
    assert not first[right].any()
    both = learned.mask_from_probability(prob, crop, image.shape, [(6, 12, 10), (6, 12, 38)], image=image)
    assert both[right].all() and both[left].all()
    # Far from anything the network saw, a positive click adds nothing it cannot justify.
    lone = learned.mask_from_probability(prob, crop, image.shape, [(6, 12, 10), (6, 2, 24)], image=image)
    assert int(lone.sum()) == int(left.sum())


class _Recorder(torch.nn.Module):
    """A stand-in network of ``in_channels`` that records its input and answers background everywhere."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        logits = torch.zeros((x.shape[0], 2, *x.shape[2:]))
        logits[:, 0] = 3.0  # foreground probability 0.05
        return logits


def _engine(in_channels: int, first_prior: str | None) -> tuple[learned.LearnedEngine, _Recorder]:
    network = _Recorder(in_channels)
    engine = learned.LearnedEngine(
        name="learned:test/v1",
        version="v1",
        model=network,
        preprocessing=numeric.DEFAULT_PREPROCESSING,
        patch=[16, 48, 48],
        first_prior=first_prior,
    )
    return engine, network


def test_the_first_answer_starts_from_the_region_growing_proposal_for_the_same_prompts() -> None:
    study = generate_ct_study(seed=11, rows=64, columns=64, slices=16, n_lesions=1, difficulty="hard")
    spacing = (study.slice_spacing, *study.pixel_spacing)
    volume = study.hu.astype(np.float32)
    z, y, x = (int(v) for v in np.argwhere(study.mask > 0).mean(axis=0).round())
    centre = (z, y, x)
    prompts = [Prompt(kind="point", points=(centre,))]
    grown = RegionGrowingEngine().propose(PromptRequest(volume=volume, spacing=spacing, prompts=prompts)).mask
    assert grown.any()

    engine, network = _engine(learned.IN_CHANNELS, learned.PRIOR_REGION_GROWING)
    answer = engine.propose(PromptRequest(volume=volume, spacing=spacing, prompts=prompts))
    assert answer.details["first_prior"] == "region-growing"
    crop = learned.crop_around([centre], volume.shape, engine.patch)
    fed = network.inputs[-1][0, 3].numpy()[tuple(slice(0, s.stop - s.start) for s in crop)]
    assert np.array_equal(fed > 0.5, grown[crop])  # the fourth channel is region growing's answer, on the crop

    # A refinement sends its previous proposal: that, not region growing, is the fourth channel.
    previous = np.zeros_like(grown)
    previous[centre] = True
    engine.propose(PromptRequest(volume=volume, spacing=spacing, prompts=prompts, previous=previous))
    fed = network.inputs[-1][0, 3].numpy()[tuple(slice(0, s.stop - s.start) for s in crop)]
    assert np.array_equal(fed > 0.5, previous[crop])

    # A version trained before the prior keeps an empty channel; a three-channel version has none.
    older, older_network = _engine(learned.IN_CHANNELS, None)
    assert older.propose(PromptRequest(volume=volume, spacing=spacing, prompts=prompts)).details["first_prior"] is None
    assert not older_network.inputs[-1][0, 3].any()
    oldest, oldest_network = _engine(learned.GUIDANCE_ONLY_CHANNELS, learned.PRIOR_REGION_GROWING)
    assert oldest.propose(PromptRequest(volume=volume, spacing=spacing, prompts=prompts)).details["first_prior"] is None
    assert oldest_network.inputs[-1].shape[1] == learned.GUIDANCE_ONLY_CHANNELS


def test_training_sees_the_region_growing_prior_for_the_first_click() -> None:
    """The training sample's fourth channel for a first click is region growing's answer on the patch (the image
    back in HU), so the network learns to correct it."""
    study = generate_ct_study(seed=12, rows=64, columns=64, slices=16, n_lesions=1, difficulty="hard")
    spacing = (study.slice_spacing, *study.pixel_spacing)
    intensity = numeric.DEFAULT_PREPROCESSING["intensity"]
    image = learned.normalise(study.hu, intensity)
    hounsfield = learned.to_hounsfield(image, intensity)
    assert np.allclose(hounsfield, np.clip(study.hu, intensity["a_min"], intensity["a_max"]), atol=0.1)
    lesion = study.mask > 0
    prior = learned._prior_for({"first_prior": "region-growing"}, image, spacing)
    assert prior is not None
    centre = learned.next_click(np.zeros_like(lesion), lesion)
    assert centre is not None
    grown = prior([centre[0]])
    assert grown is not None and learned.dice(grown, lesion) > 0.6  # region growing's outline of the nodule

    asked: list[list[tuple[int, int, int]]] = []

    def recording(positive: Sequence[tuple[int, int, int]]) -> np.ndarray | None:
        asked.append(list(positive))
        return prior(positive)

    for seed in range(4):  # the first click is the deepest voxel or anywhere in the inner half
        sample = learned._sample(
            _Recorder(learned.IN_CHANNELS), image[None], lesion[None].astype(np.float32), interactions=0,
            rng=np.random.default_rng(seed), device=torch.device("cpu"), spacing=spacing, prior=recording,
        )  # fmt: skip
        assert sample.shape[0] == learned.IN_CHANNELS and len(asked[-1]) == 1
        expected = prior(asked[-1])
        assert expected is not None and np.array_equal(sample[3] > 0.5, expected)
        assert sample[1][asked[-1][0]] == 1.0  # the same click is the positive guidance
    assert learned._prior_for({"first_prior": None}, image, spacing) is None


def test_a_refinement_changes_the_proposal_only_around_the_latest_click_and_the_way_it_asked() -> None:
    """``local_update``: a positive click adds only the part of the answer around it, a negative click removes
    only the part of the proposal around it; what the network redrew elsewhere (the drift of feeding it its own
    answer back) does not reach the proposal."""
    z, y, x = np.ogrid[:12, :24, :48]
    proposal = (z - 6) ** 2 + (y - 12) ** 2 + (x - 14) ** 2 <= 25
    missed = ((z - 6) ** 2 + (y - 12) ** 2 + (x - 22) ** 2 <= 9) & ~proposal  # a part the proposal lacks
    leak = (np.abs(z - 6) <= 1) & (np.abs(y - 12) <= 1) & (x >= 30) & (x <= 40)  # a separate leak
    eroded = (z - 6) ** 2 + (y - 12) ** 2 + (x - 14) ** 2 <= 9  # the network shrank the proposal elsewhere

    answer = eroded | missed
    grown = learned.local_update(proposal, answer, [(6, 12, 23)], positive=True)
    assert grown[missed].all()  # the clicked part came in
    assert grown[proposal].all()  # nothing the reader had was lost to the network's shrinking
    assert int(grown.sum()) == int((proposal | missed).sum())

    with_leak = proposal | leak
    answer = eroded  # the network dropped the leak and, unasked, half the nodule
    carved = learned.local_update(with_leak, answer, [(6, 12, 35)], positive=False)
    assert not carved[leak].any()
    assert carved[proposal].all()

    # A click where the network changes nothing leaves the proposal as it was.
    assert np.array_equal(learned.local_update(proposal, proposal, [(6, 2, 2)], positive=True), proposal)


def test_a_positive_click_the_network_ignores_gets_the_model_free_answer_around_it() -> None:
    """The stand-in network answers background everywhere: a positive refinement click on a missed nodule still
    adds it (region growing's answer around the click), and says so."""
    study = generate_ct_study(seed=11, rows=64, columns=64, slices=16, n_lesions=1, difficulty="hard")
    spacing = (study.slice_spacing, *study.pixel_spacing)
    volume = study.hu.astype(np.float32)
    truth = study.mask > 0
    click = learned.next_click(np.zeros_like(truth), truth)
    assert click is not None
    engine, _ = _engine(learned.IN_CHANNELS, learned.PRIOR_REGION_GROWING)
    crop = learned.crop_around([click[0]], volume.shape, engine.patch)
    previous = np.zeros_like(truth)
    previous[tuple(s.start for s in crop)] = True  # a proposal elsewhere in the crop: the click refines it
    answer = engine.propose(
        PromptRequest(
            volume=volume,
            spacing=spacing,
            prompts=[Prompt(kind="point", points=(click[0],))],
            previous=previous,
        )
    )
    assert answer.details["click_fallback"] == "region-growing"
    assert learned.dice(answer.mask & ~previous, truth) > 0.6


def test_the_answer_is_the_mean_over_mirror_images_so_a_mirrored_study_gets_the_mirrored_answer() -> None:
    """Test-time augmentation over every mirror image of the crop: even an untrained (asymmetric) network answers
    a study mirrored left-right or head-feet with the mirrored answer."""
    torch.manual_seed(3)
    network = numeric.build_network("unet", {**learned.DEFAULT_ARCHITECTURE_PARAMS})
    image = np.random.default_rng(3).random((8, 16, 16)).astype(np.float32)
    click = (3, 6, 5)
    patch = [16, 32, 32]  # the crop is the whole image
    cpu = torch.device("cpu")
    prob, crop = learned.predict_crop(network, image, [click], [], patch=patch, device=cpu)
    assert [s.stop - s.start for s in crop] == [8, 16, 16]
    for axis in (0, 2):
        z, y, x = click
        mirrored_click = (image.shape[0] - 1 - z, y, x) if axis == 0 else (z, y, image.shape[2] - 1 - x)
        mirrored, _ = learned.predict_crop(
            network, np.flip(image, axis).copy(), [mirrored_click], [], patch=patch, device=cpu
        )
        assert np.allclose(mirrored, np.flip(prob, axis), atol=1e-5)
