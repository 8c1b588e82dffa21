"""The repository root is the ament_python package ``vfdepth`` (colcon and pip both build it here).

Installs the Python packages ``vfdepth_core`` and ``vfdepth_ros``, the ``vfdepth`` command and the node
executables, plus the ROS 2 package share: package.xml, the ament index marker, launch files, node
parameter YAMLs and the rviz2 config (``share/vfdepth/{launch,config,rviz}``).
"""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "vfdepth"
HERE = Path(__file__).resolve().parent


def share(pattern: str) -> list:
    """Files of the package matching `pattern`, relative to setup.py (setuptools' data_files convention)."""
    return sorted(glob(pattern, root_dir=HERE))


setup(
    name=PACKAGE,
    version="0.1.0",
    description="Self-supervised surround-view depth (VFDepth) with ROS 2 nodes",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["vfdepth_core", "vfdepth_core.*", "vfdepth_ros", "vfdepth_ros.*"]),
    package_data={"vfdepth_ros": ["resources/*.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", share("launch/*.py")),
        (f"share/{PACKAGE}/config", share("config/*.yaml")),
        (f"share/{PACKAGE}/rviz", share("rviz/*.rviz")),
    ],
    # Runtime dependencies are pinned in requirements.txt (pip) and declared in package.xml (rosdep).
    install_requires=["setuptools"],
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "vfdepth = vfdepth_ros.cli:main",
            "surround_depth = vfdepth_ros.nodes.surround_depth:main",
        ],
    },
)
