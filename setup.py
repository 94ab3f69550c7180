"""gankd_gluon: GAN-Knowledge Distillation for object detection on MXNet Gluon + GluonCV."""
from setuptools import find_packages, setup

setup(
    name="gankd_gluon",
    version="0.1.0",
    description=("GAN-Knowledge Distillation for object detection (Hong, Yu, Fan 2019) "
                 "with the Chen et al. 2017 and Ko & Yoo baselines, on MXNet Gluon + GluonCV"),
    packages=find_packages(include=["gankd_gluon", "gankd_gluon.*"]),
    # report templates read at run time (experiments/demo.py)
    package_data={"gankd_gluon.experiments": ["templates/*.md"]},
    python_requires=">=3.8,<3.12",
    # Exact pins live in requirements.txt (CPU) and requirements-gpu.txt (CUDA 11.2); here only
    # what the package imports, so `pip install --no-deps -e .` works beside either file.
    install_requires=[
        "numpy==1.23.5",
        "gluoncv==0.10.5.post0",
        "opencv-python>=4.5,<4.11",
        "pycocotools>=2.0.6,<2.1",
        "matplotlib>=3.9,<3.10",
        "defusedxml>=0.7",
        "tqdm>=4.60",
    ],
    extras_require={
        "cpu": ["mxnet==1.9.1"],
        "gpu": ["mxnet-cu112==1.9.1"],
        "test": ["pytest>=7", "import-linter==2.1"],
    },
)
