"""awsc: launch a compute cluster on AWS EC2 with one command, and take it down again."""

__version__ = "0.1.0"
