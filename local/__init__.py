"""The local stack: the real handlers behind an API Gateway emulation, with moto as AWS (see README)."""
