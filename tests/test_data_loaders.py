"""The loaders on the real mini data: CIFAR-10 arrays, split and augmentations; reproducible
batches; the PTB/WikiText-2 corpora and variable BPTT; the ImageNet pipeline."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from darts.data import cifar, formats, imagenet, loading, text
from darts.errors import DartsError

MEAN = torch.tensor(cifar.CIFAR_MEAN).view(3, 1, 1)
STD = torch.tensor(cifar.CIFAR_STD).view(3, 1, 1)


@pytest.fixture(scope="session")
def cifar_root(mirror: Path) -> Path:
    return mirror / "cifar10-mini"


@pytest.fixture(scope="session")
def cifar_arrays(cifar_root):
    return cifar.load_cifar10(cifar_root)


@pytest.fixture(scope="session")
def ptb(mirror) -> text.Corpus:
    return text.Corpus(mirror / "ptb")


@pytest.fixture(scope="session")
def wikitext2(mirror) -> text.Corpus:
    return text.Corpus(mirror / "wikitext-2")


# ---- CIFAR-10 -------------------------------------------------------------------------------------

def test_cifar_arrays_match_torchvision(cifar_root, cifar_arrays):
    train_x, train_y, test_x, test_y = cifar_arrays
    assert train_x.shape == (5000, 32, 32, 3) and test_x.shape == (1000, 32, 32, 3)
    assert train_x.dtype == np.uint8 and train_y.dtype == np.int64
    assert np.bincount(train_y).tolist() == [500] * 10 and np.bincount(test_y).tolist() == [100] * 10

    class Unchecked(torchvision.datasets.CIFAR10):  # torchvision's reader, without the official md5s
        def _check_integrity(self) -> bool:
            return True

        def _load_meta(self) -> None:
            with open(os.path.join(self.root, self.base_folder, "batches.meta"), "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")["label_names"]

    for train, x, y in ((True, train_x, train_y), (False, test_x, test_y)):
        reference = Unchecked(str(cifar_root), train=train)
        assert np.array_equal(reference.data, x) and reference.targets == y.tolist()
    assert cifar.label_names(cifar_root)[:3] == ["airplane", "automobile", "bird"]


def test_cifar_reader_refuses_other_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": os.system}, f)
    with pytest.raises(DartsError, match="data_batch_1"):  # the reader itself, below the manifest check
        formats.load_cifar10(tmp_path)


def test_search_split_halves_are_disjoint_and_in_index_order(cifar_root, cifar_arrays):
    weights_idx, arch_idx = cifar.search_split(50_000, 0.5)
    assert weights_idx.tolist() == list(range(25_000)) and arch_idx.tolist() == list(range(25_000, 50_000))

    train_x, _, _, _ = cifar_arrays
    weights, arch = cifar.search_datasets(cifar_root, 0.5)
    assert len(weights) == len(arch) == 2500
    chw = torch.from_numpy(train_x).permute(0, 3, 1, 2)
    assert torch.equal(weights.images, chw[:2500]) and torch.equal(arch.images, chw[2500:])
    seen = {bytes(img.numpy()) for img in weights.images}
    assert not any(bytes(img.numpy()) in seen for img in arch.images)


def test_image_caps_are_class_balanced(cifar_root):
    weights, arch = cifar.search_datasets(cifar_root, 0.5, train_images=128)
    assert len(weights) == len(arch) == 64
    for half in (weights, arch):
        counts = np.bincount(half.targets, minlength=10)
        assert counts.max() - counts.min() <= 1

    labels = np.array([0, 0, 0, 1, 2, 0, 1, 1, 2, 2, 2])
    picked = loading.balanced_indices(labels, 7)
    assert picked.tolist() == [0, 1, 2, 3, 4, 6, 8]  # turns: (0, 3, 4), (1, 6, 8), (2, ...); sorted
    assert np.array_equal(picked, loading.balanced_indices(labels, 7))


def _windows(image: torch.Tensor) -> list[torch.Tensor]:
    """Every 32x32 window of the zero-padded image and of its mirror image."""
    out = []
    for flipped in (image, image.flip(-1)):
        padded = torch.nn.functional.pad(flipped, (4, 4, 4, 4))
        out += [padded[:, y:y + 32, x:x + 32] for y in range(9) for x in range(9)]
    return out


def test_search_augmentation_is_a_padded_crop_and_flip_then_normalised(cifar_arrays):
    train_x, train_y, _, _ = cifar_arrays
    dataset = cifar.train_dataset(train_x[:8], train_y[:8])
    for i in range(8):
        torch.manual_seed(i)
        out, label = dataset[i]
        assert out.shape == (3, 32, 32) and out.dtype == torch.float32 and label == train_y[i]
        pixels = torch.round((out * STD + MEAN) * 255).to(torch.uint8)
        original = torch.from_numpy(train_x[i]).permute(2, 0, 1)
        assert any(torch.equal(pixels, w) for w in _windows(original))

    plain = cifar.eval_dataset(train_x[:1], train_y[:1])[0][0]
    expected = (torch.from_numpy(train_x[0]).permute(2, 0, 1).float() / 255 - MEAN) / STD
    assert torch.allclose(plain, expected, atol=1e-5)


def test_cutout_zeroes_one_square_after_normalisation(cifar_arrays):
    train_x, train_y, _, _ = cifar_arrays
    without, with_cutout = (cifar.train_dataset(train_x[:20], train_y[:20], cutout=c) for c in (0, 16))
    for i in range(20):
        torch.manual_seed(100 + i)
        a = without[i][0]
        torch.manual_seed(100 + i)  # the same crop and flip, then the cutout draw
        b = with_cutout[i][0]
        changed = (a != b).any(0)
        rows, cols = changed.any(1).nonzero().flatten(), changed.any(0).nonzero().flatten()
        assert (b[:, changed] == 0).all()
        assert len(rows) <= 16 and len(cols) <= 16
        if len(rows):  # the changed pixels fill a rectangle (the clipped square)
            assert changed[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()


def test_epoch_batches_are_a_function_of_seed_and_epoch(cifar_root):
    weights, _ = cifar.search_datasets(cifar_root, 0.5, train_images=96)

    def batches(epoch: int, seed: int = 7, workers: int = 0) -> list:
        return list(loading.epoch_loader(weights, 16, seed=seed, epoch=epoch, num_workers=workers))

    before = torch.get_rng_state()
    epoch1 = batches(1)
    assert torch.equal(torch.get_rng_state(), before), "the global random state is left alone"
    torch.manual_seed(12345)  # a resumed run: other history, same (seed, epoch)
    for again in (batches(1), batches(1, workers=2)):
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(epoch1, again))
    assert not torch.equal(epoch1[0][0], batches(2)[0][0])
    assert not torch.equal(epoch1[0][0], batches(1, seed=8)[0][0])
    assert sum(len(y) for _, y in epoch1) == 48


def test_samplers_shard_without_overlap():
    shards = [list(loading.EpochSampler(10, seed=3, epoch=0, rank=r, world_size=3)) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4] and set(sum(shards, [])) == set(range(10))
    dataset = torch.utils.data.TensorDataset(torch.arange(10))
    parts = [torch.cat([b[0] for b in loading.eval_loader(dataset, 4, rank=r, world_size=3)]) for r in range(3)]
    assert sorted(torch.cat(parts).tolist()) == list(range(10))


# ---- PTB and WikiText-2 ---------------------------------------------------------------------------

def test_ptb_corpus(ptb, mirror):
    assert len(ptb.dictionary) == 10_000
    assert (len(ptb.train), len(ptb.valid), len(ptb.test)) == (929_589, 73_760, 82_430)
    assert ptb.train.dtype == torch.long
    first_line = (mirror / "ptb" / "train.txt").read_text(encoding="utf-8").split("\n")[0].split() + ["<eos>"]
    decoded = [ptb.dictionary.idx2word[i] for i in ptb.train[: len(first_line)]]
    assert decoded == first_line
    assert (ptb.train == ptb.dictionary.word2idx["<eos>"]).sum() == ptb.lines["train"]


def test_wikitext2_corpus_is_utf8(wikitext2):
    assert len(wikitext2.dictionary) == 33_278
    assert (len(wikitext2.train), len(wikitext2.valid), len(wikitext2.test)) == (2_088_628, 217_646, 245_569)
    assert any(not word.isascii() for word in wikitext2.dictionary.idx2word)


def test_batchify_and_get_batch(ptb):
    data = ptb.valid
    batched = text.batchify(data, 10)
    steps = len(data) // 10
    assert batched.shape == (steps, 10)
    for j in (0, 3, 9):
        assert torch.equal(batched[:, j], data[j * steps:(j + 1) * steps])
    x, y = text.get_batch(batched, 5, 35)
    assert x.shape == y.shape == (35, 10) and torch.equal(y[:-1], x[1:]) and torch.equal(y[-1], batched[40])
    x, y = text.get_batch(batched, steps - 10, 35)  # shortened at the end
    assert x.shape == (9, 10) and torch.equal(y, batched[steps - 9:])


def test_variable_bptt_windows():
    bptt, delta, steps = 70, 20, 200_000
    windows = list(text.variable_bptt(steps, bptt, delta, text.bptt_generator(0, 0)))
    assert windows == list(text.variable_bptt(steps, bptt, delta, text.bptt_generator(0, 0)))
    assert windows != list(text.variable_bptt(steps, bptt, delta, text.bptt_generator(0, 1)))
    starts = [i for i, _ in windows]
    lengths = np.array([n for _, n in windows])
    assert starts[0] == 0 and all(b - a == n for (a, n), b in zip(windows, starts[1:]))
    assert starts[-1] < steps - 2 <= starts[-1] + lengths[-1]
    assert lengths.min() >= 5 and lengths.max() <= bptt + delta
    short = lengths < 52  # N(35, 5) windows; the N(70, 5) ones are never below 52 in practice
    assert abs(short.mean() - 0.05) < 0.02
    assert abs(lengths[~short].mean() - (bptt - 0.5)) < 1.0  # int() truncates: mean ~ bptt - 0.5
    assert abs(lengths[short].mean() - (bptt / 2 - 0.5)) < 2.0


def test_token_caps_and_holdout(ptb):
    assert torch.equal(text.cap_tokens(ptb.train, 8000), ptb.train[:8000])
    assert text.cap_tokens(ptb.train, None) is ptb.train
    head, tail = text.holdout_split(ptb.valid, 0.1)
    assert len(tail) == round(0.1 * len(ptb.valid)) and torch.equal(torch.cat([head, tail]), ptb.valid)


# ---- ImageNet ---------------------------------------------------------------------------------------

def test_imagenet_pipeline_on_the_mini_sample(mirror):
    root = mirror / "imagenet-mini"
    train, val = imagenet.train_dataset(root), imagenet.val_dataset(root)
    assert (len(train), len(val)) == (160, 50)
    assert imagenet.num_classes(train) == imagenet.num_classes(val) == 10
    assert train.class_to_idx == val.class_to_idx

    greys = [path for path, _ in train.samples + val.samples if Image.open(path).mode == "L"]
    assert greys, "the sample has greyscale JPEGs"
    image = imagenet.rgb_loader(greys[0])
    assert image.mode == "RGB"
    channels = np.asarray(image)
    assert np.array_equal(channels[..., 0], channels[..., 2])

    torch.manual_seed(0)
    x, y = train[0]
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32 and y == 0
    first, second = val[0][0], val[0][0]
    assert first.shape == (3, 224, 224) and torch.equal(first, second), "evaluation is deterministic"

    capped = loading.take(train, 25)
    assert len(capped) == 25 and imagenet.num_classes(capped) == 10
    assert np.bincount(capped.targets).tolist() == [3] * 5 + [2] * 5
    batch_x, batch_y = next(iter(loading.epoch_loader(capped, 5, seed=0, epoch=0)))
    assert batch_x.shape == (5, 3, 224, 224) and batch_y.shape == (5,)


def test_imagenet_root_resolution(mirror, tmp_path):
    from darts.config import load_params

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml",
                         overrides=[f"data.root={tmp_path}"])
    with pytest.raises(DartsError, match="--imagenet-root"):
        imagenet.resolve_root(None, params)
    from darts.data.prepare import prepare

    prepare("imagenet", tmp_path / "imagenet", imagenet_root=mirror / "imagenet-mini", progress=False)
    assert imagenet.resolve_root(None, params) == (mirror / "imagenet-mini").resolve()
    assert imagenet.resolve_root(tmp_path / "elsewhere", params) == tmp_path / "elsewhere"
