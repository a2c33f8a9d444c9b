from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="nnunet-ssp",
    version="0.1.0",
    description="Self-supervised pretraining (SimCLR, PCL, DINO, MIM) for the network nnU-Net v2 plans, "
                "with a fine-tune trainer and label-efficiency experiments.",
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["nnunet_ssp", "nnunet_ssp.*"]) + ["nnunet_ssp.ext_trainers"],
    # The top-level trainers/ folder (re-export modules for nnUNet_extTrainer) ships inside the package.
    package_dir={"nnunet_ssp.ext_trainers": "trainers"},
    install_requires=[
        "nnunetv2>=2.8.0,<2.9",
        "torch>=2.1",
        "batchgenerators>=0.25",
        "batchgeneratorsv2>=0.3",
        "dynamic-network-architectures>=0.4",
        "SimpleITK>=2.2",
        "numpy>=1.24",
        "acvl-utils>=0.2",
        "blosc2>=2.0",
        "nibabel>=5.0",
        "threadpoolctl>=3.0",
        "scipy>=1.10",
        "matplotlib>=3.6",
        "tqdm>=4.60",
    ],
    extras_require={"test": ["pytest>=7", "lightly>=1.5"]},  # lightly: an oracle of the loss tests
    entry_points={"console_scripts": ["nnunet-ssp=nnunet_ssp.cli:main"]},
)
