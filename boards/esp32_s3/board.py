# ESP32-S3 DevKitC: the BOOT button on GPIO0, an addressable RGB LED on GPIO48
# (GPIO38 on the DevKitC-1 v1.1: change LED_PIN for that board).
from esp32_common import *  # noqa: F403  the ESP32 boards differ only in these lines
from esp32_common import init

NAME = "esp32_s3"
CHIP = "ESP32-S3"
LED_PIN = 48
BUTTON_PIN = 0
init(BUTTON_PIN, LED_PIN, rgb=True)
