# ESP32 (generic DevKit): the BOOT button on GPIO0, an LED on GPIO2.
from esp32_common import *  # noqa: F403  the ESP32 boards differ only in these lines
from esp32_common import init

NAME = "esp32_generic"
CHIP = "ESP32"
LED_PIN = 2
BUTTON_PIN = 0
init(BUTTON_PIN, LED_PIN)
