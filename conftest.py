"""Repository-wide pytest setup."""

try:
    # Load triton (which torch.optim pulls in on first use) before TensorFlow can be imported:
    # libtriton loaded after TensorFlow's runtime segfaults the process.
    import triton  # noqa: F401
except ImportError:
    pass
