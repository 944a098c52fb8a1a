"""sam3-angio: SAM3 fine-tuned for X-ray coronary angiography, as a plugin of SAM3's native trainer."""

__version__ = "0.1.0"
