"""nandoctor: a command-line doctor for PyTorch training runs that go nan."""

__version__ = "0.1.0"
