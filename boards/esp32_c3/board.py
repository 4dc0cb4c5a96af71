# ESP32-C3 DevKitM: the BOOT button on GPIO9, an addressable RGB LED on GPIO8.
from esp32_common import *  # noqa: F403  the ESP32 boards differ only in these lines
from esp32_common import init

NAME = "esp32_c3"
CHIP = "ESP32-C3"
LED_PIN = 8
BUTTON_PIN = 9
init(BUTTON_PIN, LED_PIN, rgb=True)
