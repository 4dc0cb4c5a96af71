# Runs before main.py on every boot. Keep it short: a failure here stops the device.
import gc

gc.collect()
