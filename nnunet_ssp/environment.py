"""Where the trainers live for nnU-Net, and the environment a user exports."""

import importlib.util
import os
from pathlib import Path
from typing import Dict


def trainer_path() -> Path:
    """The folder of re-export modules to put on `nnUNet_extTrainer` (normal and editable installs)."""
    spec = importlib.util.find_spec("nnunet_ssp.ext_trainers")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nnunet_ssp.ext_trainers is not installed; reinstall nnunet-ssp.")
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def environment_exports() -> Dict[str, str]:
    """The variables nnU-Net and nnunet-ssp read, with the current or a suggested value."""
    exports = {}
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        exports[name] = os.environ.get(name, f"$HOME/nnUNet_data/{name}")
    ext = str(trainer_path())
    current = os.environ.get("nnUNet_extTrainer", "")
    others = [p for p in current.split(os.pathsep) if p and Path(p).resolve() != Path(ext)]
    exports["nnUNet_extTrainer"] = os.pathsep.join([ext, *others])
    return exports
