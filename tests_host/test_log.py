"""onboard.log under the Unix port: its lines, and the secrets it masks in
them (test_secrets plants credentials in every store operation; this takes
the log's own rules one by one)."""

import pytest

SCRIPT = """
from onboard import log
log.level = log.DEBUG
"""


def _lines(mpy, body):
    return mpy.run(SCRIPT + body).lines


def test_each_level_writes_its_letter_the_tag_and_the_message(mpy):
    assert _lines(mpy, """
log.debug("t", "a %s", 1)
log.info("t", "b")
log.warn("t", "c %d", 3)
log.error("t", "d")
""") == ["D t: a 1", "I t: b", "W t: c 3", "E t: d"]


def test_lines_below_the_level_are_left_out(mpy):
    assert _lines(mpy, """
log.level = log.WARN
log.debug("t", "no")
log.info("t", "no")
log.warn("t", "yes")
log.error("t", "yes")
""") == ["W t: yes", "E t: yes"]


def test_a_message_that_does_not_fit_its_arguments_is_written_saying_so(mpy):
    assert _lines(mpy, 'log.info("t", "%d of %d", "x")') == ["I t: %d of %d (bad log format)"]


def test_secret_named_keys_are_masked_inside_lists_and_tuples(mpy):
    assert _lines(mpy, """
log.info("t", "%s %s", [{"password": "pw-1", "ssid": "home"}], ({"api_key": "k-1"}, 2))
""") == ["I t: [{'password': '***', 'ssid': 'home'}] [{'api_key': '***'}, 2]"]


def test_a_secret_that_contains_another_is_masked_whole(mpy):
    assert _lines(mpy, """
log.secret("tok")
log.secret("tok-and-more")
log.info("t", "%s", "tok-and-more")
""") == ["I t: ***"]


@pytest.mark.parametrize(("value", "shown"), [("abc", "***"), ("ab", "ab")])
def test_a_secret_of_three_characters_is_masked_and_a_shorter_one_not_registered(mpy, value,
                                                                                 shown):
    # (masking every "ab" would blank out ordinary words)
    assert _lines(mpy, f"""
log.secret({value!r})
log.info("t", "{value}")
""") == [f"I t: {shown}"]


def test_a_secret_that_is_not_text_is_not_registered_and_breaks_no_line(mpy):
    assert _lines(mpy, """
log.secret(b"bytes-secret")
log.secret(12345)
log.secret(None)
log.info("t", "%s %s", "12345", "x")
""") == ["I t: 12345 x"]


def test_the_log_keeps_the_24_newest_secrets_and_lets_go_of_older_ones(mpy):
    # a device that renews its token for years registers one more each time:
    # what the log keeps stays bounded
    out = _lines(mpy, """
for k in range(30):
    log.secret("secret-%02d" % k)
log.info("t", " ".join("secret-%02d" % k for k in range(30)))
""")
    assert out == ["I t: " + " ".join(["secret-%02d" % k for k in range(6)] + ["***"] * 24)]


def test_forget_secrets_forgets_every_registered_value(mpy):
    # (as a reboot does: tests_device uses it for that)
    assert _lines(mpy, """
log.secret("secret-a")
log.forget_secrets()
log.info("t", "secret-a")
""") == ["I t: secret-a"]
