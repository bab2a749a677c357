"""Tests of MNIST-style IDX data sets (autospace/data/idx.py and the `fashion-mnist` / `mnist` names)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from autospace.data import idx, load_dataset, registry
from autospace.errors import AutospaceError

SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    """No downloads, a private cache, an empty data folder, no system Fashion-MNIST."""
    monkeypatch.setenv("AUTOSPACE_NO_DOWNLOAD", "1")
    monkeypatch.setenv("AUTOSPACE_CACHE", str(tmp_path / "decoded-cache"))
    monkeypatch.setenv("AUTOSPACE_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(idx, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-system-dir")


# ---------------------------------------------------------------- fake files


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An IDX file of unsigned bytes: magic (0x0800 | ndim unless given), big-endian dims, data."""
    array = np.asarray(array, dtype=np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    return header + array.tobytes()


def fake_arrays(train: int = 12, test: int = 7, size: int = 28, seed: int = 0) -> dict[str, np.ndarray]:
    random = np.random.RandomState(seed)
    return {
        "train_images": random.randint(0, 256, (train, size, size)).astype(np.uint8),
        "train_labels": (np.arange(train) % 10).astype(np.uint8),
        "test_images": random.randint(0, 256, (test, size, size)).astype(np.uint8),
        "test_labels": (np.arange(test)[::-1] % 10).astype(np.uint8),
    }


def write_idx_folder(folder: Path, arrays: dict[str, np.ndarray] | None = None, compress=False,
                     payloads: dict[str, bytes] | None = None) -> dict[str, np.ndarray]:
    """Write the four IDX files (`compress`: True, False, or a set of keys to gzip); `payloads` overrides bytes."""
    arrays = fake_arrays() if arrays is None else arrays
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in idx.IDX_FILES.items():
        payload = (payloads or {}).get(key, idx_bytes(arrays[key]))
        gz = compress is True or (isinstance(compress, (set, tuple)) and key in compress)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / stem).write_bytes(payload)
    return arrays


def assert_matches(dataset, arrays):
    assert dataset.channels == 1 and dataset.resolution == 28 and dataset.width == 28
    assert dataset.train_images.dtype == torch.uint8 and dataset.train_labels.dtype == torch.int64
    for split in ("train", "test"):
        images = getattr(dataset, f"{split}_images")
        assert tuple(images.shape) == (arrays[f"{split}_images"].shape[0], 1, 28, 28)
        assert np.array_equal(images[:, 0].numpy(), arrays[f"{split}_images"])
        assert np.array_equal(getattr(dataset, f"{split}_labels").numpy(), arrays[f"{split}_labels"])


# ---------------------------------------------------------------- reading


@pytest.mark.parametrize("compress", [False, True, {"train_images", "test_labels"}])
def test_reads_plain_gzip_and_mixed_files(tmp_path, compress):
    folder = tmp_path / "set"
    arrays = write_idx_folder(folder, compress=compress)
    decoded = idx.read_idx_folder(folder, classes=idx.MNIST_CLASSES, image_size=(28, 28))
    assert decoded.train_images.shape == (12, 1, 28, 28) and decoded.test_images.shape == (7, 1, 28, 28)
    assert decoded.train_images.dtype == np.uint8 and decoded.train_images.flags.writeable
    assert np.array_equal(decoded.train_images[:, 0], arrays["train_images"])
    assert np.array_equal(decoded.test_labels, arrays["test_labels"])
    assert decoded.classes == idx.MNIST_CLASSES


def test_fashion_mnist_from_data_dir_and_cache(tmp_path, monkeypatch):
    arrays = write_idx_folder(tmp_path / "data" / "fashion-mnist", compress=True)
    dataset = load_dataset("fashion-mnist")
    assert dataset.name == "fashion-mnist"
    assert dataset.classes == idx.FASHION_MNIST_CLASSES and dataset.num_classes == 10
    assert dataset.classes[0] == "T-shirt/top" and dataset.classes[9] == "Ankle boot"
    assert_matches(dataset, arrays)
    assert len(dataset.mean) == 1 and len(dataset.std) == 1

    def fail(*args, **kwargs):
        raise AssertionError("decoded again instead of using the cache")

    monkeypatch.setattr(idx, "read_idx_folder", fail)
    again = load_dataset("Fashion_MNIST")
    assert torch.equal(again.train_images, dataset.train_images) and again.classes == dataset.classes


def test_fashion_mnist_falls_back_to_system_folder(tmp_path, monkeypatch):
    system = tmp_path / "usr-share-fashion"
    arrays = write_idx_folder(system, compress=True)
    monkeypatch.setattr(idx, "FASHION_MNIST_SYSTEM_DIR", system)
    (tmp_path / "data" / "fashion-mnist").mkdir(parents=True)  # present but empty: skipped
    dataset = load_dataset("fashion-mnist")
    assert_matches(dataset, arrays)
    # The data folder wins over the system folder.
    other = write_idx_folder(tmp_path / "data" / "fashion-mnist", fake_arrays(train=5, test=3, seed=1))
    assert_matches(load_dataset("fashion-mnist"), other)


def test_mnist_and_explicit_data_dir(tmp_path):
    arrays = write_idx_folder(tmp_path / "elsewhere" / "mnist")
    dataset = load_dataset("mnist", data_dir=tmp_path / "elsewhere")
    assert dataset.name == "mnist" and dataset.classes == tuple("0123456789")
    assert_matches(dataset, arrays)


def test_folder_given_as_path(tmp_path):
    arrays = write_idx_folder(tmp_path / "my-digits", compress=True)
    dataset = load_dataset(str(tmp_path / "my-digits"))
    assert dataset.name == "my-digits" and dataset.classes == tuple("0123456789")
    assert_matches(dataset, arrays)
    fashion = load_dataset(tmp_path / "my-digits" / ".." / "my-digits")
    assert fashion.num_classes == 10
    named = write_idx_folder(tmp_path / "fashion-mnist")
    assert load_dataset(str(tmp_path / "fashion-mnist")).classes == idx.FASHION_MNIST_CLASSES
    assert_matches(load_dataset(str(tmp_path / "fashion-mnist")), named)


def test_generic_folder_with_more_than_ten_labels(tmp_path):
    arrays = fake_arrays(size=5)
    arrays["train_labels"][0] = 25
    write_idx_folder(tmp_path / "letters", arrays)
    dataset = load_dataset(str(tmp_path / "letters"))
    assert dataset.num_classes == 26 and dataset.resolution == 5


def test_idx_folder_is_not_cifar10(tmp_path):
    write_idx_folder(tmp_path / "mnistlike")
    with pytest.raises(AutospaceError, match="CIFAR-10 was not found"):
        load_dataset("cifar10", data_dir=tmp_path / "mnistlike")


def test_network_shape_for_fashion_mnist(tmp_path):
    write_idx_folder(tmp_path / "data" / "fashion-mnist")
    dataset = load_dataset("fashion-mnist")
    from autospace.arch import preset_skeleton

    from autospace.arch.blocks import InvertedResidual
    from autospace.data import normalize_batch
    from autospace.nn.builder import build_network

    assert (dataset.channels, dataset.resolution) == (1, 28)
    skeleton = preset_skeleton(
        "cifar-small", num_classes=dataset.num_classes, in_channels=dataset.channels, resolution=dataset.resolution
    )
    model = build_network(skeleton.uniform_network(InvertedResidual(kernel=3, expansion=3))).eval()
    batch = normalize_batch(dataset.train_images[:2], dataset.mean, dataset.std)
    with torch.no_grad():
        logits = model(batch)
    assert tuple(logits.shape) == (2, 10) and torch.isfinite(logits).all()


# ---------------------------------------------------------------- errors


def test_missing_fashion_mnist_says_where_and_how(tmp_path):
    with pytest.raises(AutospaceError) as caught:
        load_dataset("fashion-mnist")
    message = str(caught.value)
    assert str(tmp_path / "data" / "fashion-mnist") in message
    assert str(tmp_path / "no-system-dir") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message


def test_missing_mnist_and_partial_folder(tmp_path):
    folder = tmp_path / "data" / "mnist"
    write_idx_folder(folder)
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(AutospaceError, match=r"mnist/ \(lacks t10k-labels-idx1-ubyte\)"):
        load_dataset("mnist")
    with pytest.raises(AutospaceError, match="lacks t10k-labels-idx1-ubyte"):
        load_dataset(str(folder))
    with pytest.raises(AutospaceError, match="give the folder that holds all four"):
        load_dataset(str(folder / "train-images-idx3-ubyte"))


GZ = r"(\.gz)?: "
MALFORMED = {
    "images-magic": ("train_images", lambda: idx_bytes(np.zeros((12, 28, 28)), magic=0x0801),
                     r"train-images-idx3-ubyte" + GZ + r"has magic number 0x00000801 .*expected 0x00000803"),
    "labels-magic": ("test_labels", lambda: idx_bytes(np.zeros((7, 28, 28)), magic=0x0803),
                     r"t10k-labels-idx1-ubyte" + GZ + r"has magic number 0x00000803 .*expected 0x00000801"),
    "short-header": ("train_labels", lambda: b"\x00\x00\x08",
                     r"train-labels-idx1-ubyte" + GZ + r"holds 3 bytes, fewer than the 8-byte header"),
    "truncated-images": ("train_images", lambda: idx_bytes(np.zeros((12, 28, 28)))[:-100],
                         r"train-images-idx3-ubyte" + GZ + r"is truncated: .* expected 9424 .*12 images of 28x28"),
    "truncated-labels": ("test_labels", lambda: idx_bytes(np.zeros(7))[:-1],
                         r"t10k-labels-idx1-ubyte" + GZ + r"is truncated: it holds 14 bytes, expected 15"),
    "trailing-bytes": ("test_images", lambda: idx_bytes(np.zeros((7, 28, 28))) + b"\x00",
                       r"t10k-images-idx3-ubyte" + GZ + r"is longer than its header says"),
    "label-range": ("train_labels", lambda: idx_bytes(np.full(12, 10)),
                    r"train-labels-idx1-ubyte" + GZ + r"has labels up to 10; expected 0..9"),
    "image-size": ("test_images", lambda: idx_bytes(np.zeros((7, 32, 32))),
                   r"t10k-images-idx3-ubyte" + GZ + r"holds images of 32x32 pixels; expected 28x28"),
    "zero-size": ("train_images", lambda: idx_bytes(np.zeros((12, 0, 28))),
                  r"train-images-idx3-ubyte" + GZ + r"gives images of 0x28 pixels"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_malformed_files_name_the_file_and_the_expectation(tmp_path, case, compress):
    key, payload, pattern = MALFORMED[case]
    write_idx_folder(tmp_path / "data" / "mnist", payloads={key: payload()}, compress=compress)
    with pytest.raises(AutospaceError, match=pattern):
        load_dataset("mnist")


def test_count_mismatch_names_both_files(tmp_path):
    arrays = fake_arrays()
    arrays["test_labels"] = arrays["test_labels"][:5]
    write_idx_folder(tmp_path / "data" / "mnist", arrays, compress=True)
    with pytest.raises(AutospaceError, match=r"t10k-images-idx3-ubyte.gz holds 7 images but .*t10k-labels-idx1-ubyte.gz holds 5 labels"):
        load_dataset("mnist")


def test_train_and_test_sizes_must_match_in_a_generic_folder(tmp_path):
    arrays = fake_arrays(size=8)
    arrays["test_images"] = arrays["test_images"][:, :6, :6].copy()
    write_idx_folder(tmp_path / "odd", arrays)
    with pytest.raises(AutospaceError, match="8x8 pixels but .*t10k-images-idx3-ubyte of 6x6"):
        load_dataset(str(tmp_path / "odd"))


def test_corrupt_gzip_is_an_autospace_error(tmp_path):
    folder = tmp_path / "data" / "mnist"
    write_idx_folder(folder, compress=True)
    path = folder / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(AutospaceError, match="train-labels-idx1-ubyte.gz could not be read as an IDX labels file"):
        load_dataset("mnist")


def test_names_are_listed():
    assert "fashion-mnist" in registry.DATASET_NAMES and "mnist" in registry.DATASET_NAMES
    with pytest.raises(AutospaceError, match="fashion-mnist, mnist"):
        load_dataset("no-such-set")


# ---------------------------------------------------------------- the real files


@pytest.mark.skipif(not (SYSTEM_FASHION / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_debian_package(monkeypatch):
    monkeypatch.setattr(idx, "FASHION_MNIST_SYSTEM_DIR", SYSTEM_FASHION)
    dataset = load_dataset("fashion-mnist")
    assert dataset.train_count == 60000 and dataset.test_count == 10000
    assert (dataset.channels, dataset.height, dataset.width) == (1, 28, 28)
    assert dataset.num_classes == 10 and dataset.classes[0] == "T-shirt/top"
    assert torch.bincount(dataset.train_labels).tolist() == [6000] * 10
    assert torch.bincount(dataset.test_labels).tolist() == [1000] * 10
    assert 0.2 < dataset.mean[0] < 0.4 and 0.25 < dataset.std[0] < 0.45
