"""The `onboard` command: host side of onboard (CPython)."""
