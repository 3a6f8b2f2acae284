"""nettop-ui: which process is using the network, how fast, to whom; next to CPU, memory,
disk I/O and GPU use."""

__version__ = "0.1.0"
