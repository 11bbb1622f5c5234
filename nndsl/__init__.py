"""nndsl: neural networks written the way they are written on a whiteboard."""
from .errors import NndslError, Span
from .model import Model, compile, load

__version__ = "0.1.0"
__all__ = ["Model", "NndslError", "Span", "compile", "load", "__version__"]
