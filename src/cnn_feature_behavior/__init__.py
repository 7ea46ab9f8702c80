"""What every single feature of a pretrained CNN says about every class of a dataset."""

import os

# TensorFlow prints pages of C++ start-up logs otherwise; users can still raise it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
