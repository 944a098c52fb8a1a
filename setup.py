"""sam3-angio: SAM3 fine-tuned for X-ray coronary angiography, as a plugin of SAM3's native trainer."""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    # SAM3 itself (imported, never vendored) and what its training code imports
    # (sam3's own [train] extra lacks psutil; see INSTALL.md).
    "sam3==0.1.4",
    "torch>=2.5",
    "torchvision>=0.20",
    "numpy>=1.26,<2.4",
    "hydra-core>=1.3",
    "omegaconf>=2.3",
    "submitit>=1.5",
    "fvcore>=0.1.5.post20221221",
    "iopath>=0.1.10,<0.2",
    "pycocotools>=2.0.10",
    "torchmetrics>=1.0",
    "scipy>=1.11",
    "tensorboard>=2.14",
    "psutil>=5.9",
    "scikit-image>=0.22",
    "scikit-learn>=1.3",
    "einops>=0.8",
    "timm>=1.0.17",
    # ships bpe_simple_vocab_16e6.txt.gz, which the sam3 wheel lacks
    "open_clip_torch>=2.24",
    "pillow>=10",
    # inference inputs: DICOM X-ray angiograms, PNG/JPEG/BMP/TIFF frames (sam3_angio/data/dicom.py, inputs.py)
    "pydicom>=3.0",
    # pydicom's decoder for the compressed syntaxes cath labs write (JPEG Lossless, JPEG-LS, JPEG 2000, JPEG
    # extended); BSD-licensed GDCM (pylibjpeg-libjpeg, the other plugin for JPEG Lossless, is GPL-3.0)
    "python-gdcm>=3.0.10",
    "imageio>=2.31",
    # multi-page TIFF stacks page by page, and the codecs of compressed TIFF (LZW, Deflate, JPEG), which
    # tifffile alone cannot decode (sam3_angio/data/media.py); imagecodecs also decodes the 12-bit JPEG Extended
    # DICOM that GDCM refuses (sam3_angio/data/dicom_codecs.py); both BSD
    "tifffile>=2023.7",
    "imagecodecs>=2023.9",
    # video cines (MP4, AVI, MOV, MKV, WebM, MPEG) through imageio's pyav plugin. PyAV is BSD; its wheel
    # bundles FFmpeg (built LGPL v3, see av.library_meta) and codec libraries of their own licences, some
    # GPL (libx264, libx265: encoders). The project only decodes.
    "av>=12",
    "matplotlib>=3.7",
    # LoRA fine-tuning (model.lora, sam3_angio/model/lora.py) and its tests
    "peft>=0.11",
]

EXTRAS = {
    "dev": ["pytest>=8", "pytest-timeout>=2.3", "pytest-xdist>=3.5"],
}

setup(
    name="sam3-angio",
    version="0.1.0",
    description="SAM3 fine-tuned for X-ray coronary angiography (CASS segments, stenosis, QCA)",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["sam3_angio", "sam3_angio.*"]),
    include_package_data=True,
    package_data={"sam3_angio": ["py.typed"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "sam3-angio-train=sam3_angio.training.cli:main",
        ],
    },
)
