"""pip-installable part of warpd: the ROS-free library ``warpd_core`` and the ``warpd`` CLI.

The ROS package ``warpd_ros`` (nodes + generated interfaces) is built with colcon from
CMakeLists.txt/package.xml; ``make setup`` does both (see README).
"""

from setuptools import find_packages, setup

setup(
    name="warpd",
    version="0.1.0",
    description="WARPD: generated closed-loop policies (latent diffusion + hypernetwork) with a ROS 2 runtime",
    packages=find_packages(include=["warpd_core", "warpd_core.*"]),
    package_data={"warpd_core": ["assets/pusht_warpd/*.json", "assets/pusht_warpd/*.safetensors",
                                  "assets/pusht_warpd/onnx/*.onnx"]},
    python_requires=">=3.10",
    install_requires=["numpy", "pyyaml"],
    extras_require={
        "train": ["torch", "diffusers", "hypnettorch", "safetensors", "onnx", "onnxruntime", "tqdm", "matplotlib"],
        "sim": ["gym-pusht", "pymunk<7", "imageio", "robosuite", "h5py"],
    },
    entry_points={"console_scripts": ["warpd = warpd_core.cli:main"]},
)
