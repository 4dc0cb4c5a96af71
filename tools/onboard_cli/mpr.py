"""mpremote, patient with a slow filesystem: `python -m onboard_cli.mpr ARGS`
is `mpremote ARGS` in every other way.

mpremote gives each step it runs on the board (for a file copy: open,
write 256 bytes, ..., close) 10 s to answer, then gives up with "timeout
waiting for first EOF reception". Now and then, as files are created,
LittleFS compacts a directory's metadata block; on a board that is a
fraction of a second, on the emulated ESP32 it is 10-30 s, so a deploy there
failed at whichever file met the compaction. Here each step gets
STEP_TIMEOUT of silence instead; a board that is really gone still ends the
command, only later."""

import sys

STEP_TIMEOUT = 120  # seconds of silence one step of mpremote's may take


def main():
    from mpremote import main as mpremote_main
    from mpremote.transport_serial import SerialTransport

    exec_raw = SerialTransport.exec_raw

    def patient_exec_raw(self, command, timeout=10, data_consumer=None):
        if timeout is not None:
            timeout = max(timeout, STEP_TIMEOUT)
        return exec_raw(self, command, timeout=timeout, data_consumer=data_consumer)

    SerialTransport.exec_raw = patient_exec_raw
    return mpremote_main.main()


if __name__ == "__main__":
    sys.exit(main())
