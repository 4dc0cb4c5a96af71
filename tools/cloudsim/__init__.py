"""cloudsim: a local stand-in for the five clouds (HTTPS API + Mosquitto)."""
