"""pyposert::Warp: kernel warp_aot.cu, TensorRT definition plugin.py (imports tensorrt: import it
only through export.plugins.register_plugins)."""
