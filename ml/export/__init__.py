"""Export: FadeNet -> ONNX with named I/O and metadata, parity-checked, plus the model card."""
__all__ = ["onnx", "card"]
