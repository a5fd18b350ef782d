"""mri_core: brain MRI tumor screening library (decode, preprocess, predict, explain, train).

The product's heart; importable without Streamlit and never imports it. TensorFlow is
imported lazily by the modules that need it, so `import mri_core` stays cheap.
"""

__version__ = "0.1.0"
