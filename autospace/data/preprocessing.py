"""What a trained network expects of its input, as plain data: the record a run keeps (train's
metrics.json) and every export carries (ONNX metadata, model.py constants, export.json), so a user
can feed raw images without reading autospace's data code."""

from __future__ import annotations

from autospace.data.dataset import ImageDataset

NORMALISATION = "x = (image / 255 - mean) / std, per channel, in float32"
RESIZE = ("images of another size are area-resized to resolution x resolution first (torch "
          "interpolate, mode 'area', rounded back to uint8), as training did with image_size")


def preprocessing_record(dataset: ImageDataset) -> dict:
    """The input a network trained on `dataset` expects: mean/std in [0, 1] units, the square
    resolution, the class names in label order, and the raw input's layout and dtype."""
    return {
        "mean": list(dataset.mean), "std": list(dataset.std), "resolution": dataset.resolution,
        "channels": dataset.channels, "channel_order": {3: "RGB", 1: "gray"}.get(dataset.channels, "as stored"),
        "class_names": list(dataset.classes), "input_layout": "NCHW", "input_dtype": "uint8",
        "normalisation": NORMALISATION, "resize": RESIZE, "data": dataset.name,
    }
