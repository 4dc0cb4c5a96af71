"""mpremote, patient with a slow board: `python -m onboard_cli.mpr ARGS`
is `mpremote ARGS` in every other way.

mpremote gives each step it runs on the board (for a file copy: open,
write 256 bytes, ..., close) 10 s to answer, then gives up with "timeout
waiting for first EOF reception". Now and then, as files are created,
LittleFS compacts a directory's metadata block; on a board that is a
fraction of a second, on the emulated ESP32 it is 10-30 s, so a deploy there
failed at whichever file met the compaction. Here each step gets
STEP_TIMEOUT of silence instead; a board that is really gone still ends the
command, only later.

Getting to the raw REPL has the same 10 s, and mpremote sends its Ctrl-C
once. A board running onboard's setup mode hears that Ctrl-C through its
Improv reader, which first loads its code; the emulated ESP32 answers in
0.3 s idle and in 3 s beside four busy processes on this 2-core machine,
and once in CI, beside the host tests, not within the 10 s: test-device
failed with "could not enter raw repl". Here a board that has not answered
is sent Ctrl-C again, for up to STEP_TIMEOUT.

mpremote's `exec` and `run` wait for the script's end with no bound at all:
a board that went silent mid-script (hung, or its line wedged) held
`onboard deploy` for good. Here they too end after STEP_TIMEOUT of silence.

ONBOARD_MPREMOTE_STEP_S sets STEP_TIMEOUT (seconds; 120 when unset)."""

import os
import sys
import time

# seconds of silence one step of mpremote's may take
STEP_TIMEOUT = float(os.environ.get("ONBOARD_MPREMOTE_STEP_S") or 120)


def main():
    from mpremote import main as mpremote_main
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    enter_raw_repl = SerialTransport.enter_raw_repl
    follow = SerialTransport.follow

    def patient_follow(self, timeout, data_consumer=None):
        # every wait for a step's output: each step (exec_raw, with 10 s) and
        # exec's and run's scripts (None: for ever) get STEP_TIMEOUT of silence
        timeout = STEP_TIMEOUT if timeout is None else max(timeout, STEP_TIMEOUT)
        return follow(self, timeout, data_consumer)

    def patient_enter_raw_repl(self, soft_reset=True, timeout_overall=10):
        # each try starts over with Ctrl-C, so a late answer to the last one is harmless
        give_up = time.monotonic() + STEP_TIMEOUT
        while True:
            try:
                return enter_raw_repl(self, soft_reset=soft_reset, timeout_overall=timeout_overall)
            except TransportError:
                if time.monotonic() >= give_up:
                    raise
                sys.stderr.write("mpremote: the board has not answered yet, Ctrl-C again\n")

    SerialTransport.follow = patient_follow
    SerialTransport.enter_raw_repl = patient_enter_raw_repl
    return mpremote_main.main()


if __name__ == "__main__":
    sys.exit(main())
