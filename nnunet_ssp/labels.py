"""Structure names from a dataset.json, keyed as nnU-Net's evaluation and label manager key the structures."""

from typing import Dict, Sequence, Tuple, Union

LabelKey = Union[int, Tuple[int, ...]]


def label_key(value: Union[int, Sequence[int]]) -> LabelKey:
    """A dataset.json label value (an int, or a list of ints for a region) as a hashable key."""
    return tuple(value) if isinstance(value, (list, tuple)) else int(value)


def structure_names(dataset_json: dict) -> Dict[LabelKey, str]:
    """Label value (or region tuple) -> structure name, for every foreground label in a dataset.json."""
    names = {}
    for name, value in dataset_json["labels"].items():
        key = label_key(value)
        if key != 0:
            names[key] = name
    return names
