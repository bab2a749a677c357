"""Tests of autospace.data: file formats, errors, cache, augmentation, batching, splits."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import autospace.data as data
from autospace.data import cifar
from autospace.errors import AutospaceError

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
REAL_NPZ = Path(__file__).resolve().parents[2] / "shared/data/cifar10_jpeg.npz"


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    """No downloads, no user data folder, a private cache."""
    monkeypatch.setenv("AUTOSPACE_NO_DOWNLOAD", "1")
    monkeypatch.setenv("AUTOSPACE_CACHE", str(tmp_path / "decoded-cache"))
    monkeypatch.delenv("AUTOSPACE_DATA", raising=False)


# ---------------------------------------------------------------- fake files


def fake_batches(per_batch: int = 6, test_count: int = 5, seed: int = 0) -> dict[str, bytes]:
    """The official python batches (genuine key layout), pickled, with random pixels."""
    random = np.random.RandomState(seed)
    contents = {}
    for name in [f"data_batch_{number}" for number in range(1, 6)] + ["test_batch"]:
        count = test_count if name == "test_batch" else per_batch
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(value) for value in random.randint(0, 10, count)],
            b"data": random.randint(0, 256, (count, 3072)).astype(np.uint8),
            b"filenames": [f"image_{index}.png".encode() for index in range(count)],
        }
        # The genuine files were written by Python 2 with numpy 1: numpy.core, not numpy._core.
        contents[name] = pickle.dumps(batch, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    meta = {b"num_cases_per_batch": per_batch, b"label_names": [name.encode() for name in CLASSES], b"num_vis": 3072}
    contents["batches.meta"] = pickle.dumps(meta, protocol=2)
    return contents


def write_batches_folder(parent: Path, contents: dict[str, bytes] | None = None) -> Path:
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, payload in (contents or fake_batches()).items():
        (folder / name).write_bytes(payload)
    return folder


def archive_bytes(contents: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, payload in contents.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def batch_arrays(contents: dict[str, bytes], name: str) -> tuple[np.ndarray, np.ndarray]:
    batch = pickle.loads(contents[name])
    return batch[b"data"], np.array(batch[b"labels"])


def colour_image(colour: tuple[int, int, int], size: tuple[int, int] = (32, 32)) -> Image.Image:
    return Image.new("RGB", size, colour)


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def write_jpeg_npz(path: Path, train_labels: list[int], test_labels: list[int]) -> None:
    colours = [(250, 10, 10), (10, 250, 10), (10, 10, 250)]
    arrays = {"classes": np.array(["red", "green", "blue"])}
    for split, labels in (("train", train_labels), ("test", test_labels)):
        encoded = [jpeg_bytes(colour_image(colours[label])) for label in labels]
        arrays[f"{split}_jpeg"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum([len(item) for item in encoded])]).astype(np.int64)
        arrays[f"y_{split}"] = np.array(labels, dtype=np.uint8)
    np.savez(path, **arrays)


def write_image_folder(root: Path, size=(8, 6)) -> dict[str, np.ndarray]:
    """Two classes (folder names out of order on purpose), PNGs with random pixels; returns pixels by file."""
    random = np.random.RandomState(1)
    pixels = {}
    for split, per_class in (("train", 3), ("test", 2)):
        for name in ("zebra", "ant"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(per_class):
                array = random.randint(0, 256, (size[1], size[0], 3)).astype(np.uint8)
                Image.fromarray(array).save(folder / f"{index}.png")
                pixels[f"{split}/{name}/{index}.png"] = array
    (root / "train" / "ant" / "notes.txt").write_text("not an image")
    return pixels


# ---------------------------------------------------------------- CIFAR-10 formats


def test_official_batches_folder_layout_and_pixel_order(tmp_path):
    contents = fake_batches()
    write_batches_folder(tmp_path)
    dataset = data.load_dataset("cifar10", data_dir=tmp_path)
    assert dataset.name == "cifar10" and dataset.classes == CLASSES and dataset.num_classes == 10
    assert dataset.train_images.shape == (30, 3, 32, 32) and dataset.test_images.shape == (5, 3, 32, 32)
    assert dataset.train_images.dtype == torch.uint8 and dataset.train_labels.dtype == torch.int64
    assert dataset.train_images.is_contiguous()
    assert (dataset.channels, dataset.height, dataset.width, dataset.resolution) == (3, 32, 32, 32)
    first, first_labels = batch_arrays(contents, "data_batch_1")
    second, _ = batch_arrays(contents, "data_batch_2")
    # Channel-major rows: value c * 1024 + i * 32 + j is pixel (c, i, j).
    assert dataset.train_images[0, 2, 5, 7] == first[0, 2 * 1024 + 5 * 32 + 7]
    assert torch.equal(dataset.train_images[0], torch.from_numpy(first[0].reshape(3, 32, 32)))
    assert torch.equal(dataset.train_images[6], torch.from_numpy(second[0].reshape(3, 32, 32)))
    assert dataset.train_labels[:6].tolist() == first_labels.tolist()
    test_data, test_labels = batch_arrays(contents, "test_batch")
    assert torch.equal(dataset.test_images, torch.from_numpy(test_data.reshape(-1, 3, 32, 32)))
    assert dataset.test_labels.tolist() == test_labels.tolist()
    assert len(dataset.mean) == 3 and all(0.4 < value < 0.6 for value in dataset.mean)


def test_archive_gives_the_same_tensors_as_the_folder(tmp_path):
    contents = fake_batches()
    folder = write_batches_folder(tmp_path / "extracted", contents)
    (tmp_path / "packed").mkdir()
    (tmp_path / "packed" / "cifar-10-python.tar.gz").write_bytes(archive_bytes(contents))
    from_folder = data.load_dataset("cifar10", data_dir=folder)  # data_dir straight at the folder
    from_archive = data.load_dataset("cifar10", data_dir=tmp_path / "packed")
    by_path = data.load_dataset(str(tmp_path / "packed" / "cifar-10-python.tar.gz"))
    for other in (from_archive, by_path):
        assert other.classes == from_folder.classes
        assert torch.equal(other.train_images, from_folder.train_images)
        assert torch.equal(other.test_labels, from_folder.test_labels)


def test_jpeg_npz(tmp_path):
    path = tmp_path / "cifar10_jpeg.npz"
    write_jpeg_npz(path, train_labels=[0, 0, 1, 1, 2, 2], test_labels=[2, 0])
    dataset = data.load_dataset("cifar10", data_dir=tmp_path)
    assert dataset.classes == ("red", "green", "blue")
    assert dataset.train_images.shape == (6, 3, 32, 32) and dataset.test_images.shape == (2, 3, 32, 32)
    assert dataset.train_labels.tolist() == [0, 0, 1, 1, 2, 2] and dataset.test_labels.tolist() == [2, 0]
    means = dataset.train_images.float().mean(dim=(2, 3))
    # JPEG is lossy; a flat colour survives within a few levels, and channel 0 is red.
    assert torch.all(means[0] - torch.tensor([250.0, 10.0, 10.0]) < 8)
    assert means[2, 1] > 240 and means[4, 2] > 240 and means[4, 0] < 20


def test_search_order_prefers_the_npz(tmp_path):
    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz", [0, 1, 2], [0])
    write_batches_folder(tmp_path)
    assert data.load_dataset("cifar10", data_dir=tmp_path).classes == ("red", "green", "blue")


def test_environment_variable_chooses_the_data_folder(tmp_path, monkeypatch):
    write_batches_folder(tmp_path / "mine")
    monkeypatch.setenv("AUTOSPACE_DATA", str(tmp_path / "mine"))
    assert data.resolve_data_dir() == tmp_path / "mine"
    assert data.resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert data.load_dataset("cifar10").train_count == 30
    monkeypatch.delenv("AUTOSPACE_DATA")
    assert data.resolve_data_dir() == Path("~/.cache/autospace/data").expanduser()


# ---------------------------------------------------------------- ImageFolder


def test_image_folder_png(tmp_path):
    pixels = write_image_folder(tmp_path / "tree")
    dataset = data.load_dataset(str(tmp_path / "tree"))
    same = data.load_dataset(f"imagefolder:{tmp_path / 'tree'}")
    assert dataset.classes == ("ant", "zebra") and dataset.name == "tree"
    assert dataset.train_images.shape == (6, 3, 6, 8) and (dataset.height, dataset.width) == (6, 8)
    assert dataset.train_labels.tolist() == [0, 0, 0, 1, 1, 1] and dataset.test_labels.tolist() == [0, 0, 1, 1]
    expected = torch.from_numpy(pixels["train/zebra/1.png"]).permute(2, 0, 1)
    assert torch.equal(dataset.train_images[4], expected)
    assert torch.equal(same.test_images, dataset.test_images)


def test_image_folder_greyscale_gives_one_channel(tmp_path):
    for split in ("train", "test"):
        for name in ("a", "b"):
            (tmp_path / split / name).mkdir(parents=True)
            Image.new("L", (5, 5), 100).save(tmp_path / split / name / "x.png")
    dataset = data.load_dataset(f"imagefolder:{tmp_path}")
    assert dataset.train_images.shape == (2, 1, 5, 5) and len(dataset.mean) == 1


def test_image_folder_wrong_size_names_the_file(tmp_path):
    write_image_folder(tmp_path)
    colour_image((1, 2, 3), size=(9, 6)).save(tmp_path / "test" / "ant" / "odd.png")
    with pytest.raises(AutospaceError, match=r"odd\.png is 9x6.*8x6"):
        data.load_dataset(str(tmp_path))


def test_image_folder_test_class_missing_from_train(tmp_path):
    write_image_folder(tmp_path)
    (tmp_path / "test" / "yak").mkdir()
    colour_image((1, 2, 3), size=(8, 6)).save(tmp_path / "test" / "yak" / "0.png")
    with pytest.raises(AutospaceError, match="yak"):
        data.load_dataset(str(tmp_path))


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("kind", ["npz", "pickle", "tar", "count", "range", "keys", "unsafe"])
def test_malformed_files_raise_one_clear_error(tmp_path, kind):
    contents = fake_batches()
    if kind == "npz":
        target = tmp_path / "cifar10_jpeg.npz"
        target.write_bytes(b"PK\x03\x04 this is not a zip archive")
    elif kind == "keys":
        target = tmp_path / "cifar10_jpeg.npz"
        np.savez(target, classes=np.array(["a"]))
    elif kind == "pickle":
        contents["test_batch"] = contents["test_batch"][:100]
        target = write_batches_folder(tmp_path, contents) / "test_batch"
    elif kind == "unsafe":  # a pickle that would call a function is refused, not run
        contents["test_batch"] = pickle.dumps({b"data": os.getcwd, b"labels": []}, protocol=2)
        target = write_batches_folder(tmp_path, contents) / "test_batch"
    elif kind == "tar":
        target = tmp_path / "cifar-10-python.tar.gz"
        target.write_bytes(archive_bytes(contents)[:300])
    else:
        batch = pickle.loads(contents["data_batch_3"])
        if kind == "count":
            batch[b"labels"] = batch[b"labels"][:-1]
        else:
            batch[b"labels"][0] = 10
        contents["data_batch_3"] = pickle.dumps(batch, protocol=2)
        target = write_batches_folder(tmp_path, contents) / "data_batch_3"
    with pytest.raises(AutospaceError) as caught:
        data.load_dataset("cifar10", data_dir=tmp_path)
    assert str(target) in str(caught.value)
    assert "cifar-10-batches-py" in str(caught.value) and "ImageFolder" in str(caught.value)  # formats accepted


def test_corrupt_jpeg_inside_npz(tmp_path):
    path = tmp_path / "cifar10_jpeg.npz"
    write_jpeg_npz(path, [0, 1], [2])
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["train_jpeg"] = arrays["train_jpeg"].copy()
    arrays["train_jpeg"][:40] = 7
    np.savez(path, **arrays)
    with pytest.raises(AutospaceError, match="cifar10_jpeg.npz"):
        data.load_dataset(str(path))


def test_nothing_found_without_download(tmp_path):
    with pytest.raises(AutospaceError) as caught:
        data.load_dataset("cifar10", data_dir=tmp_path)
    message = str(caught.value)
    for part in (str(tmp_path), "cifar10_jpeg.npz", "cifar-10-batches-py", "cifar-10-python.tar.gz", "AUTOSPACE_DATA"):
        assert part in message


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(AutospaceError, match="cifar10.*synthetic.*imagefolder:PATH"):
        data.load_dataset("cifar1000")
    with pytest.raises(AutospaceError, match="synthetic:TRAIN,TEST"):
        data.load_dataset("synthetic:12")
    with pytest.raises(AutospaceError, match="does not exist"):
        data.load_dataset("/no/such/folder")


# ---------------------------------------------------------------- download (no network: urlopen is faked)


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self


def test_download_checks_md5_and_writes_atomically(tmp_path, monkeypatch):
    payload = archive_bytes(fake_batches())
    monkeypatch.delenv("AUTOSPACE_NO_DOWNLOAD")
    monkeypatch.setattr(cifar, "urlopen", lambda url, timeout: FakeResponse(payload))
    with pytest.raises(AutospaceError, match="md5"):
        data.load_dataset("cifar10", data_dir=tmp_path / "bad")
    assert list((tmp_path / "bad").iterdir()) == []  # no partial file left behind
    monkeypatch.setattr(cifar, "CIFAR10_ARCHIVE_MD5", hashlib.md5(payload).hexdigest())
    dataset = data.load_dataset("cifar10", data_dir=tmp_path / "good")
    assert dataset.train_count == 30 and (tmp_path / "good" / "cifar-10-python.tar.gz").is_file()


def test_download_failure_explains_where_to_put_the_file(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.delenv("AUTOSPACE_NO_DOWNLOAD")
    monkeypatch.setattr(cifar, "urlopen", offline)
    with pytest.raises(AutospaceError, match=r"no network.*AUTOSPACE_DATA"):
        data.load_dataset("cifar10", data_dir=tmp_path)


# ---------------------------------------------------------------- cache


def test_second_load_reads_the_cache(tmp_path, monkeypatch):
    folder = write_batches_folder(tmp_path)
    first = data.load_dataset("cifar10", data_dir=tmp_path)
    assert list((tmp_path / "decoded-cache").glob("cifar10-*/train_images.npy"))

    def must_not_decode(path):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(cifar, "read_cifar_batches_folder", must_not_decode)
    second = data.load_dataset("cifar10", data_dir=tmp_path)
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(first, field), getattr(second, field))
    assert (second.classes, second.mean, second.std) == (first.classes, first.mean, first.std)
    # A damaged entry is a miss (with a warning), not an error.
    entry = next((tmp_path / "decoded-cache").glob("cifar10-*"))
    (entry / "test_images.npy").write_bytes(b"\x93NUMPY broken")
    monkeypatch.undo()
    monkeypatch.setenv("AUTOSPACE_NO_DOWNLOAD", "1")
    monkeypatch.setenv("AUTOSPACE_CACHE", str(tmp_path / "decoded-cache"))
    with pytest.warns(UserWarning, match="damaged cache entry"):
        third = data.load_dataset("cifar10", data_dir=tmp_path)
    assert torch.equal(third.test_images, first.test_images)
    monkeypatch.setattr(cifar, "read_cifar_batches_folder", must_not_decode)
    assert torch.equal(data.load_dataset("cifar10", data_dir=tmp_path).test_images, first.test_images)
    # A changed source is a miss: the decoder runs again.
    os.utime(folder / "test_batch", ns=(1, 1))
    with pytest.raises(AssertionError, match="decoded again"):
        data.load_dataset("cifar10", data_dir=tmp_path)


# ---------------------------------------------------------------- augmentation and batches


@pytest.mark.parametrize("padding", [0, 2, 4])
def test_apply_augmentation_equals_the_reference_loop(padding):
    generator = torch.Generator().manual_seed(padding)
    images = torch.randint(0, 256, (32, 3, 10, 12), dtype=torch.uint8, generator=generator)
    offsets, flips = data.draw_augmentation(32, padding, generator, "cpu")
    fast = data.apply_augmentation(images, offsets, flips, padding)
    assert fast.dtype == torch.uint8 and fast.shape == images.shape
    assert torch.equal(fast, data.reference_augment(images, offsets, flips, padding))


def test_augmentation_varies_and_is_seeded():
    generator = torch.Generator().manual_seed(0)
    offsets, flips = data.draw_augmentation(512, 4, generator, "cpu")
    assert offsets.min() == 0 and offsets.max() == 8 and len(torch.unique(offsets[:, 0])) == 9
    assert 150 < int(flips.sum()) < 362
    _, no_flips = data.draw_augmentation(64, 4, generator, "cpu", flip=False)
    assert not no_flips.any()
    image = torch.arange(3 * 8 * 8, dtype=torch.uint8).reshape(1, 3, 8, 8).repeat(64, 1, 1, 1)
    augmented = data.augment_batch(image, torch.Generator().manual_seed(1))
    assert len({bytes(sample.flatten().tolist()) for sample in augmented}) > 20
    assert torch.equal(augmented, data.augment_batch(image, torch.Generator().manual_seed(1)))
    flipped = data.apply_augmentation(image[:1], torch.tensor([[2, 2]]), torch.tensor([True]), 2)
    assert torch.equal(flipped, torch.flip(image[:1], dims=(3,)))


def test_normalize_batch():
    images = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    output = data.normalize_batch(images, mean, std)
    expected = (images.double() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert output.dtype == torch.float32 and torch.allclose(output.double(), expected, atol=1e-5)
    fast = data.normalize_batch(images, mean, std, dtype=torch.bfloat16, channels_last=True)
    assert fast.dtype == torch.bfloat16 and fast.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(AutospaceError, match="one mean and std per channel"):
        data.normalize_batch(images, (0.5,), (0.2,))


def test_epoch_batches():
    batches = data.epoch_batches(10, 4, torch.Generator().manual_seed(3), drop_last=False)
    assert [len(batch) for batch in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    dropped = data.epoch_batches(10, 4, torch.Generator().manual_seed(3), drop_last=True)
    assert [len(batch) for batch in dropped] == [4, 4] and torch.equal(dropped[0], batches[0])


def test_iterate_batches_keeps_images_and_labels_together():
    dataset = data.synthetic_dataset(train_count=40, test_count=10)
    indices = torch.arange(0, 40, 2)
    seen = []
    reference = data.normalize_batch(dataset.train_images[indices], dataset.mean, dataset.std)
    for images, labels in data.iterate_batches(
        dataset.train_images, dataset.train_labels, indices, 8, torch.Generator().manual_seed(0),
        augment=False, mean=dataset.mean, std=dataset.std, drop_last=False,
    ):
        assert images.dtype == torch.float32 and images.shape[1:] == (3, 32, 32)
        for image, label in zip(images, labels):
            matches = torch.all(torch.isclose(image, reference), dim=(1, 2, 3))
            position = int(torch.nonzero(matches)[0])
            assert int(label) == int(dataset.train_labels[indices[position]])
            seen.append(position)
    assert sorted(seen) == list(range(20))
    augmented = list(data.iterate_batches(
        dataset.train_images, dataset.train_labels, None, 16, torch.Generator().manual_seed(0),
        augment=True, mean=dataset.mean, std=dataset.std, drop_last=True,
    ))
    assert [len(labels) for _, labels in augmented] == [16, 16]
    with pytest.raises(AutospaceError, match="generator"):
        next(data.iterate_batches(dataset.train_images, dataset.train_labels, None, 8, None, True,
                                  dataset.mean, dataset.std, False))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augmentation_on_cuda_equals_the_reference():
    generator = torch.Generator(device="cuda").manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8).cuda()
    offsets, flips = data.draw_augmentation(64, 4, generator, "cuda")
    fast = data.apply_augmentation(images, offsets, flips, 4)
    assert fast.is_cuda and torch.equal(fast.cpu(), data.reference_augment(images.cpu(), offsets.cpu(), flips.cpu(), 4))
    batch = next(data.iterate_batches(images, torch.zeros(64, dtype=torch.int64), None, 32, generator, True,
                                      (0.5,) * 3, (0.25,) * 3, True, channels_last=True, dtype=torch.bfloat16))
    assert batch[0].is_cuda and batch[0].dtype == torch.bfloat16
    with pytest.raises(AutospaceError, match="generator"):
        data.augment_batch(images, torch.Generator().manual_seed(0))


# ---------------------------------------------------------------- splits, subsets, synthetic


def test_stratified_split_properties():
    labels = torch.cat([torch.full((count,), label) for label, count in enumerate([100, 50, 30, 20])])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    train, validation = data.stratified_split(labels, validation_fraction=0.2, seed=1)
    assert len(validation) == 40 and len(train) == 160
    assert not set(train.tolist()) & set(validation.tolist())
    assert sorted(train.tolist() + validation.tolist()) == list(range(200))
    assert torch.bincount(labels[validation]).tolist() == [20, 10, 6, 4]
    again_train, again_validation = data.stratified_split(labels, validation_fraction=0.2, seed=1)
    assert torch.equal(train, again_train) and torch.equal(validation, again_validation)
    _, other = data.stratified_split(labels, validation_fraction=0.2, seed=2)
    assert not torch.equal(validation, other)
    _, counted = data.stratified_split(labels, validation_count=7, seed=1)
    assert len(counted) == 7
    for bad in ({}, {"validation_fraction": 1.0}, {"validation_count": 200}, {"validation_fraction": 0.1,
                                                                               "validation_count": 3}):
        with pytest.raises(AutospaceError):
            data.stratified_split(labels, **bad)


def test_subset_is_stratified_and_seeded():
    dataset = data.synthetic_dataset(train_count=200, test_count=50)
    small = dataset.subset(100, None, torch.Generator().manual_seed(0))
    assert small.train_count == 100 and small.test_count == 50 and small.mean == dataset.mean
    assert torch.bincount(small.train_labels).tolist() == [10] * 10
    again = dataset.subset(100, None, torch.Generator().manual_seed(0))
    assert torch.equal(small.train_images, again.train_images)
    with pytest.raises(AutospaceError, match="train_count"):
        dataset.subset(201, None, torch.Generator())


def test_synthetic_is_deterministic_and_named():
    first = data.load_dataset("synthetic:64,32")
    second = data.synthetic_dataset(train_count=64, test_count=32)
    assert torch.equal(first.train_images, second.train_images) and torch.equal(first.test_labels, second.test_labels)
    assert first.train_images.shape == (64, 3, 32, 32) and first.num_classes == 10
    assert not torch.equal(first.train_images, data.synthetic_dataset(64, 32, seed=1).train_images)
    assert data.load_dataset("synthetic").train_count == 512
    moved = first.to("cpu")
    assert moved.train_images.dtype == torch.uint8


def test_dataset_rejects_bad_tensors():
    dataset = data.synthetic_dataset(train_count=20, test_count=10)
    with pytest.raises(AutospaceError, match="labels range"):
        data.ImageDataset(dataset.name, ("a", "b"), dataset.train_images, dataset.train_labels,
                          dataset.test_images, dataset.test_labels, dataset.mean, dataset.std)
    with pytest.raises(AutospaceError, match="one label per image|exactly one label"):
        data.ImageDataset(dataset.name, dataset.classes, dataset.train_images, dataset.train_labels[:5],
                          dataset.test_images, dataset.test_labels, dataset.mean, dataset.std)


# ---------------------------------------------------------------- the real data set


@pytest.mark.skipif(not REAL_NPZ.is_file(), reason=f"{REAL_NPZ} is not present")
def test_real_cifar10_from_the_shared_npz():
    dataset = data.load_dataset("cifar10", data_dir=REAL_NPZ.parent)
    assert dataset.classes == CLASSES
    assert dataset.train_images.shape == (50000, 3, 32, 32) and dataset.test_images.shape == (10000, 3, 32, 32)
    assert torch.bincount(dataset.train_labels).tolist() == [5000] * 10
    assert torch.bincount(dataset.test_labels).tolist() == [1000] * 10
    assert all(abs(value - reference) < 0.02 for value, reference in zip(dataset.mean, (0.4914, 0.4822, 0.4465)))


def test_resized_dataset_averages_pixel_blocks_and_refuses_bad_sizes():
    from autospace.data import load_dataset

    dataset = load_dataset("synthetic:64,16")
    small = dataset.resized(16)
    assert small.resolution == 16 and small.train_images.dtype == torch.uint8
    assert small.train_images.shape[0] == 64 and small.test_images.shape[0] == 16
    blocks = dataset.train_images.float().reshape(64, 3, 16, 2, 16, 2).mean((3, 5))
    assert torch.equal(small.train_images, blocks.round().to(torch.uint8))
    assert torch.equal(small.train_labels, dataset.train_labels) and small.mean == dataset.mean
    assert dataset.resized(dataset.resolution) is dataset
    with pytest.raises(AutospaceError, match="image_size"):
        dataset.resized(0)
    assert load_dataset("synthetic:64,16", None, 8).resolution == 8
