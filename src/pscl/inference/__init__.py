"""Applying a trained U-Net: tiled prediction (torch or ONNX Runtime), evaluation, ONNX export.

Importing this package imports no torch: `pscl predict --onnx` runs where only onnxruntime is installed.
"""
