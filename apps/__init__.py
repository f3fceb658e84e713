"""Pure policy compilers: policy model + topology in, flow specs out (no I/O)."""
